"""
The protocol that first meets every connection on a listener: it reads the
first request head and hands the connection to Autobahn directly when it is
a WebSocket upgrade, and to twisted.web otherwise.

Going straight to Autobahn spares every WebSocket the twisted.web request
that L{autobahn.twisted.resource.WebSocketResource} would parse first and
then hand over (a second parse of the same head), and the objects that
request leaves behind for the life of the connection.  An upgrade that
arrives on a kept-alive HTTP connection still works: twisted.web's tree
routes it to a L{WebSocketResource}.

A connection that has not sent a whole request head within the opening
handshake timeout is dropped, so idle sockets cannot pile up unseen, and a
head longer than L{MAX_HEAD} (plain HTTP's bound) is answered with 431 at
once: a head that never ends costs one scan of each byte and 16 KiB of
memory, never more.
"""

from __future__ import annotations

import re
from typing import Any, Callable

from twisted.internet.interfaces import IAddress, IDelayedCall, IProtocolFactory, IReactorTime
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure

from wsservice.websocket._twisted import handOver

#: The longest request head, as for plain HTTP; longer ones get 431.
MAX_HEAD = 16 * 1024
#: Seconds a refused client has to read its answer before the connection drops.
_REFUSAL_GRACE = 1.0
_END = b"\r\n\r\n"
_UPGRADE = re.compile(rb"\r\nupgrade:[^\r\n]*\bwebsocket\b", re.IGNORECASE)


class FrontDoor(Protocol):
    """
    Buffers bytes until the first request head is complete, then becomes a
    pass-through to the protocol chosen for it.
    """

    _log = Logger()

    factory: "FrontDoorFactory"

    def __init__(self, addr: IAddress) -> None:
        self._addr = addr
        self._buffer = bytearray()
        self._inner: Protocol | None = None
        self._timer: IDelayedCall | None = None

    def connectionMade(self) -> None:
        self.factory.awaitHead(self)

    def timedOut(self) -> None:
        """
        Called by the factory when the request head took too long.
        """
        self._log.info(
            "dropped {peer}: no complete request within {timeout} s",
            peer=_peer(self._addr),
            timeout=self.factory.timeout,
        )
        self.transport.loseConnection()

    def _stopTimer(self) -> None:
        self.factory.headDone(self)
        timer, self._timer = self._timer, None
        if timer is not None and timer.active():
            timer.cancel()

    def dataReceived(self, data: bytes) -> None:
        inner = self._inner
        if inner is not None:
            inner.dataReceived(data)
            return
        buffer = self._buffer
        # Only the new bytes (and three before them) can complete the head.
        start = max(0, len(buffer) - 3)
        buffer += data
        end = buffer.find(_END, start, MAX_HEAD + len(_END))
        if end < 0:
            # Past this, no terminator can end the head within the bound.
            if len(buffer) >= MAX_HEAD + len(_END):
                self._tooLarge()
            return
        self._stopTimer()
        head = bytes(buffer[:end])
        factory = self.factory.websocket if _UPGRADE.search(head) else self.factory.web
        inner = factory.buildProtocol(self._addr)
        if inner is None:
            self.transport.loseConnection()
            return
        self._inner = inner
        buffered, self._buffer = bytes(buffer), bytearray()
        # Later reads skip this pass-through where the transport allows.
        handOver(self.transport, self, inner)
        inner.makeConnection(self.transport)
        inner.dataReceived(buffered)

    def _tooLarge(self) -> None:
        self._stopTimer()
        reason = f"request head larger than {MAX_HEAD} bytes"
        self._log.info("refused {peer}: 431 {reason}", peer=_peer(self._addr), reason=reason)
        self.factory.refused("head-too-large")
        body = (reason + "\n").encode("ascii")
        self.transport.write(
            b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
            b"Content-Type: text/plain; charset=utf-8\r\n"
            b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body))
        self._buffer = bytearray()
        self._inner = _Discard()
        # Half-close and stop reading: the client reads the answer and our
        # end of file, and what it still sends waits in its own buffers,
        # costing us nothing, until it closes or the grace is over.
        self.transport.pauseProducing()
        try:
            self.transport.loseWriteConnection()
        except AttributeError:  # a transport that cannot half-close
            self.transport.loseConnection()
        self._timer = self.factory.clock.callLater(_REFUSAL_GRACE, self.transport.abortConnection)

    def connectionLost(self, reason: Failure = Failure(ConnectionError())) -> None:
        self._stopTimer()
        if self._inner is not None:
            self._inner.connectionLost(reason)


class _Discard(Protocol):
    """
    What reads a connection that was refused while it closes.
    """

    def dataReceived(self, data: bytes) -> None:
        pass


class FrontDoorFactory(Factory):
    """
    Builds a L{FrontDoor} per connection; its log prefix, C{wsservice},
    names the listener in C{"wsservice starting on 60000"}.

    @ivar web: the factory of plain HTTP connections (a twisted.web Site).
    @ivar websocket: the factory of WebSocket connections.
    @ivar clock: the clock of the request-head timeout.
    @ivar timeout: seconds a connection may take to send its first request
        head; 0 waits forever.  The opening handshake after the head has its
        own bounds (a refusal's grace here, C{--auth-timeout} for the
        connect hook), so this is the only open-handshake timer.
    @ivar refused: called with a label for each connection refused here.
    """

    def __init__(
        self,
        web: IProtocolFactory,
        websocket: IProtocolFactory,
        clock: IReactorTime,
        timeout: float,
        refused: Callable[[str], None] = lambda label: None,
    ) -> None:
        self.web = web
        self.websocket = websocket
        self.clock = clock
        self.timeout = timeout
        self.refused = refused
        self._waiting: dict[FrontDoor, float] = {}
        self._sweep: IDelayedCall | None = None

    def buildProtocol(self, addr: IAddress) -> FrontDoor:
        protocol = FrontDoor(addr)
        protocol.factory = self
        return protocol

    # One timer for every connection still waiting for its request head,
    # set for the earliest deadline: a connection costs a dict entry, not a
    # DelayedCall of its own (a heap entry made and cancelled per
    # connection, measurable in a handshake storm).  Deadlines are in
    # arrival order, so the waiting dict is in deadline order too.

    def awaitHead(self, door: FrontDoor) -> None:
        """
        Start C{door}'s request-head deadline.
        """
        if self.timeout <= 0:
            return
        self._waiting[door] = self.clock.seconds() + self.timeout
        if self._sweep is None:
            self._sweep = self.clock.callLater(self.timeout, self._expire)

    def headDone(self, door: FrontDoor) -> None:
        """
        C{door} has its head, or is gone: its deadline no longer applies.
        """
        self._waiting.pop(door, None)

    def _expire(self) -> None:
        self._sweep = None
        waiting, now = self._waiting, self.clock.seconds()
        expired, following = [], None
        for door, deadline in waiting.items():
            if deadline > now:
                following = deadline
                break
            expired.append(door)
        for door in expired:
            del waiting[door]
            door.timedOut()
        if following is not None:
            self._sweep = self.clock.callLater(following - now, self._expire)

    def doStart(self) -> None:
        self.web.doStart()
        self.websocket.doStart()

    def doStop(self) -> None:
        sweep, self._sweep = self._sweep, None
        if sweep is not None and sweep.active():
            sweep.cancel()
        self.web.doStop()
        self.websocket.doStop()

    def logPrefix(self) -> str:
        return "wsservice"


def _peer(addr: IAddress) -> str:
    host, port = getattr(addr, "host", None), getattr(addr, "port", None)
    return f"{host}:{port}" if host is not None else str(addr)
