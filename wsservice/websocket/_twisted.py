"""
Every Twisted name outside its public interfaces that wsservice relies on,
in one place.

Twisted's compatibility policy lets names with a leading underscore, and
attributes that belong to no interface, change without notice.  Each one
used is in L{RELIED_ON} with the reason; C{tests/unit/test_internals.py}
fails, naming the attribute, when an installed Twisted no longer has it.

  - C{tcp.Connection.dataBuffer} and C{._tempDataBuffer}
    (C{abstract.FileDescriptor}): whether the transport still holds bytes
    to send.  A write may go straight to the socket only when it holds
    none, or the bytes would overtake each other.
  - C{tcp.Connection.socket} and C{.connected}: the socket that straight
    write goes to, while the connection is up.
    Going around C{transport.write} spares the two C{epoll_ctl} calls and
    the C{doWrite} dispatch it costs per connection per burst, the top of
    the fan-out profile.
  - C{tcp.Connection.TLS}: true once TLS runs on the transport, which must
    then see every byte.
  - C{tcp.Connection.protocol}: the protocol a plain TCP or Unix transport
    calls with what it reads; the front door points it at the protocol it
    hands a connection to, as Autobahn's C{WebSocketResource} does.
  - C{abstract.FileDescriptor.producer}: the producer registered with a
    transport; behind C{WebSocketResource} it is the HTTP channel that
    handed the connection over, which has nothing left to produce.
  - C{http.Request.gotLength} and C{.handleContentChunk} ("not intended
    for users"): where the HTTP channel announces a request body's length
    and passes its bytes; L{boundedRequests} refuses a body over the bound
    there, before it is stored, rather than after (twisted.web has no
    body limit of its own).
"""

from __future__ import annotations

from typing import Any

from twisted.internet import tcp
from twisted.internet.interfaces import IPushProducer, ITransport

#: (attribute, why): what this module relies on of a plain TCP transport
#: (a C{tcp.Connection}).
RELIED_ON: tuple[tuple[str, str], ...] = (
    ("dataBuffer", "bytes still queued in the transport"),
    ("_tempDataBuffer", "writes not yet joined into dataBuffer"),
    ("producer", "the producer registered with the transport"),
    ("socket", "the socket a direct write goes to"),
    ("connected", "whether the connection is up"),
    ("TLS", "whether TLS runs on the transport"),
    ("protocol", "the protocol the transport calls with what it reads"),
)

#: What L{boundedRequests} overrides of C{twisted.web.http.Request}.
REQUEST_RELIED_ON: tuple[tuple[str, str], ...] = (
    ("gotLength", "called with a request body's declared length, before the body"),
    ("handleContentChunk", "called with each piece of a request body"),
)


def boundedRequests(maxBody: int) -> type:
    """
    A C{twisted.web.server.Request} class that answers a request whose body
    is longer than C{maxBody} bytes with 413 and closes the connection,
    storing none of it.
    """
    from io import BytesIO

    from twisted.web.server import Request

    class BoundedRequest(Request):
        _received = 0
        _refused = False

        def gotLength(self, length: int | None) -> None:
            self.content = BytesIO()
            if length is not None and length > maxBody:
                self._refuse()

        def handleContentChunk(self, data: bytes) -> None:
            if self._refused:
                return
            self._received += len(data)
            if self._received > maxBody:
                self._refuse()
                return
            self.content.write(data)

        def _refuse(self) -> None:
            self._refused = True
            self.content = BytesIO()
            body = b"request body larger than %d bytes\n" % maxBody
            transport = self.channel.transport
            transport.write(b"HTTP/1.1 413 Content Too Large\r\nContent-Type: text/plain; "
                            b"charset=utf-8\r\nContent-Length: %d\r\nConnection: close"
                            b"\r\n\r\n%s" % (len(body), body))
            # Half-close and stop reading, as the front door does for a head
            # too large: the client reads the answer rather than a reset,
            # and the channel's idle timeout ends what it leaves open.
            transport.pauseProducing()
            try:
                transport.loseWriteConnection()
            except AttributeError:
                transport.loseConnection()

        def process(self) -> None:
            if not self._refused:
                super().process()

    return BoundedRequest


def writesDirectly(transport: ITransport) -> bool:
    """
    Whether L{writeDirectly} may be used on C{transport}: plain TCP only,
    never TLS.
    """
    return isinstance(transport, tcp.Connection) and not getattr(transport, "TLS", False)


def writeDirectly(transport: Any, data: bytes) -> None:
    """
    Send C{data} straight to the socket when the transport has nothing
    queued, and give what the socket does not take to the transport;
    nothing once the connection is down.
    """
    if not transport.connected:
        return
    if not transport.dataBuffer and not transport._tempDataBuffer:
        try:
            sent = transport.socket.send(data)
        except OSError:
            sent = 0  # EAGAIN or a dead socket: the transport handles both
        if sent == len(data):
            return
        data = data[sent:]
    transport.write(data)


def handOver(transport: Any, current: object, new: object) -> None:
    """
    Make a plain TCP or Unix transport call C{new} directly instead of
    C{current}.  TLS transports keep calling C{current}, which must then
    forward.
    """
    if getattr(transport, "protocol", None) is current:
        transport.protocol = new


def replaceProducer(transport: Any, producer: IPushProducer) -> bool:
    """
    Register C{producer} with C{transport} as its only streaming producer,
    unregistering the one a previous owner left (the HTTP channel behind
    C{WebSocketResource}).

    @return: whether the transport accepted it.
    """
    if getattr(transport, "producer", None) is not None:
        transport.unregisterProducer()
    try:
        transport.registerProducer(producer, True)
    except Exception:
        return False
    return True
