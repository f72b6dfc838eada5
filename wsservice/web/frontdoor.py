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
handshake timeout is dropped, so idle sockets cannot pile up unseen.
"""

from __future__ import annotations

import re
from typing import Any

from twisted.internet.interfaces import IAddress, IDelayedCall, IProtocolFactory, IReactorTime
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure

from wsservice.websocket._twisted import handOver

#: A request head longer than this is handed to twisted.web, which refuses it.
MAX_HEAD = 16 * 1024
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
        self._buffer = b""
        self._inner: Protocol | None = None
        self._timer: IDelayedCall | None = None

    def connectionMade(self) -> None:
        timeout = self.factory.timeout
        if timeout > 0:
            self._timer = self.factory.clock.callLater(timeout, self._timedOut)

    def _timedOut(self) -> None:
        self._timer = None
        self._log.info(
            "dropped {peer}: no complete request within {timeout} s",
            peer=_peer(self._addr),
            timeout=self.factory.timeout,
        )
        self.transport.loseConnection()

    def _stopTimer(self) -> None:
        timer, self._timer = self._timer, None
        if timer is not None and timer.active():
            timer.cancel()

    def dataReceived(self, data: bytes) -> None:
        inner = self._inner
        if inner is not None:
            inner.dataReceived(data)
            return
        self._buffer += data
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0 and len(self._buffer) <= MAX_HEAD:
            return
        self._stopTimer()
        head = self._buffer[: end if end >= 0 else MAX_HEAD]
        factory = self.factory.websocket if _UPGRADE.search(head) else self.factory.web
        inner = factory.buildProtocol(self._addr)
        if inner is None:
            self.transport.loseConnection()
            return
        self._inner = inner
        buffered, self._buffer = self._buffer, b""
        # Later reads skip this pass-through where the transport allows.
        handOver(self.transport, self, inner)
        inner.makeConnection(self.transport)
        inner.dataReceived(buffered)

    def connectionLost(self, reason: Failure = Failure(ConnectionError())) -> None:
        self._stopTimer()
        if self._inner is not None:
            self._inner.connectionLost(reason)


class FrontDoorFactory(Factory):
    """
    Builds a L{FrontDoor} per connection; its log prefix, C{wsservice},
    names the listener in C{"wsservice starting on 60000"}.

    @ivar web: the factory of plain HTTP connections (a twisted.web Site).
    @ivar websocket: the factory of WebSocket connections.
    @ivar clock: the clock of the request-head timeout.
    @ivar timeout: seconds a connection may take to send its first request
        head; 0 waits forever.
    """

    def __init__(
        self,
        web: IProtocolFactory,
        websocket: IProtocolFactory,
        clock: IReactorTime,
        timeout: float,
    ) -> None:
        self.web = web
        self.websocket = websocket
        self.clock = clock
        self.timeout = timeout

    def buildProtocol(self, addr: IAddress) -> FrontDoor:
        protocol = FrontDoor(addr)
        protocol.factory = self
        return protocol

    def doStart(self) -> None:
        self.web.doStart()
        self.websocket.doStart()

    def doStop(self) -> None:
        self.web.doStop()
        self.websocket.doStop()

    def logPrefix(self) -> str:
        return "wsservice"


def _peer(addr: IAddress) -> str:
    host, port = getattr(addr, "host", None), getattr(addr, "port", None)
    return f"{host}:{port}" if host is not None else str(addr)
