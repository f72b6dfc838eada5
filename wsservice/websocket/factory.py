"""
The WebSocket factory: what every connection shares (handler registry,
rooms, clock, settings, metrics, the write scheduler), the set of open
connections, and the drain on shutdown.
"""

from __future__ import annotations

from typing import Any

from autobahn.twisted.websocket import WebSocketServerFactory
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from wsservice.config import ProtocolSettings
from wsservice.auth.carriers import Carriers
from wsservice.interfaces import IAuthenticator, IRoomHub
from wsservice.metrics import ServiceMetrics
from wsservice.registry import HandlerRegistry
from wsservice.websocket import CLOSE_GOING_AWAY
from wsservice.websocket._autobahn import deferDebugFormatting, useTimer, withOptions
from wsservice.websocket.protocol import ServiceProtocol
from wsservice.websocket.timers import BucketTimer
from wsservice.websocket.writes import WriteScheduler


def protocolOptions(settings: ProtocolSettings) -> dict[str, Any]:
    """
    Autobahn's protocol options for C{settings}.

    Every option is set: Autobahn's defaults are unlimited sizes, failing by
    dropping TCP (peers see 1006, not 1009/1007) and no keepalive, and any
    C{setProtocolOptions} call resets C{allowNullOrigin}.  Origins are
    checked in L{wsservice.websocket.negotiation}, connections counted by
    the factory.
    """
    limits = settings.limits
    return dict(
        versions=[13],
        maxFramePayloadSize=limits.maxMessageSize,
        maxMessagePayloadSize=limits.maxMessageSize,
        failByDrop=False,
        utf8validateIncoming=True,
        # The front door bounds the request head and the connect hook its
        # own wait; a second timer per connection here would only cost.
        openHandshakeTimeout=0,
        closeHandshakeTimeout=limits.closeHandshakeTimeout,
        autoPingInterval=limits.pingInterval,
        autoPingTimeout=limits.pingTimeout if limits.pingInterval else 0,
        autoPingSize=12,
        tcpNoDelay=True,
        allowedOrigins=["*"],
        allowNullOrigin=True,
        maxConnections=0,
        webStatus=False,
        echoCloseCodeReason=False,
        perMessageCompressionAccept=(
            acceptDeflate if settings.perMessageDeflate else refuseExtensions
        ),
    )


def refuseExtensions(offers: list[Any]) -> None:
    """
    Accept no compression extension.
    """
    return None


def acceptDeflate(offers: list[Any]) -> Any:
    """
    Accept the first permessage-deflate offer.
    """
    from autobahn.websocket.compress import (
        PerMessageDeflateOffer,
        PerMessageDeflateOfferAccept,
    )

    for offer in offers:
        if isinstance(offer, PerMessageDeflateOffer):
            return PerMessageDeflateOfferAccept(offer)
    return None


class ServiceFactory(WebSocketServerFactory):
    """
    Makes L{ServiceProtocol}s and holds what they share.

    @ivar writes: the L{WriteScheduler} of every connection's writes.
    @ivar draining: set once shutdown began; handshakes are refused.
    """

    protocol = ServiceProtocol

    def __init__(
        self,
        registry: HandlerRegistry,
        rooms: IRoomHub,
        settings: ProtocolSettings,
        metrics: ServiceMetrics,
        clock: IReactorTime,
        idPrefix: str = "",
        authenticator: IAuthenticator | None = None,
    ) -> None:
        """
        @param idPrefix: what every connection id starts with (unique per
            process when rooms span processes).
        @param authenticator: who checks each handshake's token; C{None}
            admits everyone anonymously.
        """
        super().__init__()
        deferDebugFormatting()
        self.registry = registry
        self.settings = settings
        self.metrics = metrics
        self.clock = clock
        self.rooms = rooms
        self.authenticator = authenticator
        self.carriers = Carriers(settings.auth.cookie, settings.auth.allowQuery)
        self.draining = False
        self.openProtocols: set[ServiceProtocol] = set()
        self.writes = WriteScheduler(clock)
        self._connections = 0
        self._idPrefix = idPrefix
        self._allClosed: list[Deferred[None]] = []
        self._handlerLogs: dict[str, Logger] = {}
        self.setProtocolOptions(**protocolOptions(settings))
        self.protocol = withOptions(self.protocol, self)
        useTimer(self, BucketTimer(clock))

    def newConnectionId(self) -> str:
        """
        A short identifier, unique within this factory: C{c1}, C{c2}, ...
        after the prefix.
        """
        self._connections += 1
        return f"{self._idPrefix}c{self._connections}"

    def handlerLog(self, subprotocol: str) -> Logger:
        """
        The logger handlers of C{subprotocol} share.
        """
        log = self._handlerLogs.get(subprotocol)
        if log is None:
            log = self._handlerLogs[subprotocol] = Logger(namespace=f"wsservice.handlers.{subprotocol}")
        return log

    @property
    def openCount(self) -> int:
        return len(self.openProtocols)

    def opened(self, protocol: ServiceProtocol) -> None:
        self.openProtocols.add(protocol)

    def closed(self, protocol: ServiceProtocol) -> None:
        self.openProtocols.discard(protocol)
        if not self.openProtocols:
            waiting, self._allClosed = self._allClosed, []
            for d in waiting:
                d.callback(None)

    def goingAway(self, reason: str = "server shutting down") -> Deferred[None]:
        """
        Refuse new handshakes, send every open connection a close frame with
        1001 (going away), and return a L{Deferred} that fires once they have
        all closed.
        """
        self.draining = True
        d: Deferred[None] = Deferred()
        if not self.openProtocols:
            d.callback(None)
            return d
        self._allClosed.append(d)
        for protocol in list(self.openProtocols):
            protocol.closeWith(CLOSE_GOING_AWAY, reason)
        return d

    def disconnect(self, code: int, reason: str, user: str | None = None,
                   connection: str | None = None) -> int:
        """
        Close, with C{code} and C{reason}, the open connections of C{user}
        (by its verified identity) or the one whose id is C{connection};
        return how many.
        """
        chosen = []
        for protocol in self.openProtocols:
            held = protocol.connection
            if held is None:
                continue
            if connection is not None and held.id != connection:
                continue
            if user is not None and (held.identity is None or held.identity.user != user):
                continue
            chosen.append(protocol)
        for protocol in chosen:
            protocol.closeWith(code, reason)
        return len(chosen)

    def abortAll(self) -> None:
        """
        Drop every connection still open.
        """
        for protocol in list(self.openProtocols):
            if protocol.transport is not None:
                protocol.transport.abortConnection()
