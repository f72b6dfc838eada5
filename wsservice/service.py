"""
Build the running service: the rooms, the WebSocket factory, the resource
tree and one listener per endpoint, in a L{MultiService}.
"""

from __future__ import annotations

from typing import Any, Callable

from twisted.application import strports
from twisted.application.service import IService, MultiService
from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.web.server import Site

from wsservice.config import ServiceConfig
from wsservice.frontdoor import FrontDoorFactory
from wsservice.hub import RoomHub
from wsservice.metrics import ServiceMetrics
from wsservice.protocol import ProtocolSettings, ServiceFactory, prepareMessage
from wsservice.registry import HandlerRegistry
from wsservice.web import buildRoot


class WebSocketService(MultiService):
    """
    The top of the service tree, parent of the listeners.

    It logs C{wsservice ready} once every listener is bound and the reactor
    runs.  On stop it drains before the listeners close, so that load
    balancers watching C{/healthz} see 503 and new handshakes are refused
    with 503 while it happens: every open connection is sent a close frame
    with 1001 (going away), and the closing handshakes get at most
    C{shutdownTimeout} seconds before what is left is dropped.
    """

    _log = Logger()

    def __init__(self, factory: ServiceFactory, shutdownTimeout: float, reactor: Any) -> None:
        super().__init__()
        self._factory = factory
        self._shutdownTimeout = shutdownTimeout
        self._reactor = reactor

    def startService(self) -> None:
        super().startService()
        listeners = [s for s in self if s is not self._factory.rooms]
        self._reactor.callWhenRunning(
            self._log.info, "wsservice ready: {count} listeners", count=len(listeners)
        )

    def stopService(self) -> Deferred[Any]:
        factory = self._factory
        factory.metrics.draining()
        self._log.info(
            "shutting down: closing {count} connections", count=factory.openCount
        )
        drained = factory.goingAway()
        timer = self._reactor.callLater(self._shutdownTimeout, self._giveUp, drained)

        def stopListening(_: None) -> Deferred[Any]:
            if timer.active():
                timer.cancel()
            return MultiService.stopService(self)

        return drained.addCallback(stopListening)

    def _giveUp(self, drained: Deferred[None]) -> None:
        self._log.warn(
            "shutdown timeout: dropping {count} connections", count=self._factory.openCount
        )
        self._factory.abortAll()
        if not drained.called:
            drained.callback(None)


# -- scaling out (--broker, --workers): wsservice/redishub.py, workers.py ----


def buildRooms(config: ServiceConfig, clock: Any, metrics: ServiceMetrics) -> Any:
    """
    The room hub: in this process, or across processes through the
    C{--broker} (then it is also a service that owns its connections, and
    L{buildService} starts it; its C{brokerState()} says whether Redis is
    reachable).
    """
    if config.brokerURL is None:
        return RoomHub(clock, prepareMessage, historySize=config.handlers.historySize,
                       historyBytes=config.limits.maxMessageSize,
                       delivered=metrics.roomDelivered)
    from twisted.internet.endpoints import HostnameEndpoint

    from wsservice.redishub import BrokerAddress, RedisRoomHub

    return RedisRoomHub(
        clock,
        prepareMessage,
        lambda address: HostnameEndpoint(clock, address.host, address.port, timeout=5),
        BrokerAddress.fromURL(config.brokerURL),
        historySize=config.handlers.historySize,
        delivered=metrics.roomDelivered,
        drainTimeout=config.limits.shutdownTimeout + 1,
    )


def listenersFor(config: ServiceConfig, factory: Any, reactor: Any) -> list[IService]:
    """
    One listening service per C{--listen} endpoint.
    """
    return [strports.service(d, factory, reactor=reactor) for d in config.listen]


# ----------------------------------------------------------------------------


def buildSite(
    config: ServiceConfig, registry: HandlerRegistry, clock: Any
) -> tuple[Site, ServiceFactory]:
    """
    Build the HTTP site that serves every listener, and the WebSocket
    factory behind it.
    """
    metrics = ServiceMetrics()
    rooms = buildRooms(config, clock, metrics)
    metrics.watchRooms(rooms.roomCount)
    settings = ProtocolSettings(
        limits=config.limits,
        handlers=config.handlers,
        defaultSubprotocol=config.defaultSubprotocol,
        allowedOrigins=config.allowedOrigins,
        perMessageDeflate=config.perMessageDeflate,
    )
    factory = ServiceFactory(registry, rooms, settings, metrics, clock)

    brokerState = getattr(rooms, "brokerState", None)
    if brokerState is not None:
        metrics.watchBroker(lambda: brokerState() == "connected", rooms.queuedCount)

    def healthy() -> tuple[bool, str]:
        if factory.draining:
            return False, "shutting down"
        detail = f"ok: {factory.openCount} connections"
        if brokerState is not None:
            # Still healthy without Redis: rooms keep working on this node.
            detail += f"; broker {brokerState()}"
        return True, detail

    root = buildRoot(factory, config.staticDir, metrics, healthy)
    site = Site(root)
    site.displayTracebacks = False
    return site, factory


def buildService(
    config: ServiceConfig,
    registry: HandlerRegistry,
    reactor: Any,
    listeners: Callable[[ServiceConfig, Any, Any], list[IService]] = listenersFor,
) -> MultiService:
    """
    Build the whole service from C{config}.

    @param reactor: provides L{IReactorTime} and what C{strports} needs; it
        is passed down, never imported.
    @param listeners: makes the listening services (a worker process
        adopts its parent's sockets instead).
    """
    site, factory = buildSite(config, registry, reactor)
    top = WebSocketService(factory, config.limits.shutdownTimeout, reactor)
    if IService.providedBy(factory.rooms):
        # Started before the listeners; stopped after the drain, when the
        # connections have left their rooms, so it can leave Redis cleanly.
        factory.rooms.setServiceParent(top)
    frontDoor = FrontDoorFactory(site, factory, reactor, config.limits.openHandshakeTimeout)
    for listener in listeners(config, frontDoor, reactor):
        listener.setServiceParent(top)
    return top
