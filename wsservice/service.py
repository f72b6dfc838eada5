"""
Build the running service: the rooms, the WebSocket factory, the resource
tree and one listener per endpoint, in a L{MultiService}.
"""

from __future__ import annotations

from typing import Any, Callable

from twisted.application import strports
from twisted.application.service import IService, MultiService, Service
from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.web.server import Site

from wsservice.config import ServiceConfig
from wsservice.hub import RoomHub
from wsservice.metrics import ServiceMetrics
from wsservice.protocol import ProtocolSettings, ServiceFactory, prepareMessage
from wsservice.registry import HandlerRegistry
from wsservice.web import buildRoot


class GracefulShutdown(Service):
    """
    On stop, tells every open connection the server is going away (1001) and
    waits for their closing handshakes, at most C{timeout} seconds, then
    drops what is left.

    It is the first child of the service tree, so it stops last: by then the
    listeners have stopped accepting.
    """

    _log = Logger()

    def __init__(self, factory: ServiceFactory, metrics: ServiceMetrics,
                 timeout: float, clock: Any) -> None:
        self._factory = factory
        self._metrics = metrics
        self._timeout = timeout
        self._clock = clock

    def stopService(self) -> Deferred[None]:
        super().stopService()
        self._metrics.draining()
        count = self._factory.openCount
        self._log.info("shutting down: closing {count} connections", count=count)
        allClosed = self._factory.goingAway()
        timer = self._clock.callLater(self._timeout, self._giveUp, allClosed)

        def done(result: None) -> None:
            if timer.active():
                timer.cancel()

        return allClosed.addCallback(done)

    def _giveUp(self, allClosed: Deferred[None]) -> None:
        self._log.warn(
            "shutdown timeout: dropping {count} connections",
            count=self._factory.openCount,
        )
        self._factory.abortAll()
        if not allClosed.called:
            allClosed.callback(None)


class DrainFirst(MultiService):
    """
    A L{MultiService} that tells the WebSocket factory to refuse new
    handshakes and report unhealthy before its listeners stop.
    """

    def __init__(self, factory: ServiceFactory) -> None:
        super().__init__()
        self._factory = factory

    def stopService(self) -> Deferred[Any]:
        self._factory.draining = True
        return super().stopService()


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


def listenersFor(config: ServiceConfig, site: Site, reactor: Any) -> list[IService]:
    """
    One listening service per C{--listen} endpoint.
    """
    return [strports.service(d, site, reactor=reactor) for d in config.listen]


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

    def healthy() -> tuple[bool, str]:
        if factory.draining:
            return False, "shutting down"
        return True, f"ok: {factory.openCount} connections"

    root = buildRoot(factory, config.staticDir, metrics, healthy)
    site = Site(root)
    site.displayTracebacks = False
    return site, factory


def buildService(
    config: ServiceConfig,
    registry: HandlerRegistry,
    reactor: Any,
    listeners: Callable[[ServiceConfig, Site, Any], list[IService]] = listenersFor,
) -> MultiService:
    """
    Build the whole service from C{config}.

    @param reactor: provides L{IReactorTime} and what C{strports} needs; it
        is passed down, never imported.
    @param listeners: makes the listening services (a worker process
        adopts its parent's sockets instead).
    """
    site, factory = buildSite(config, registry, reactor)
    top = DrainFirst(factory)
    if IService.providedBy(factory.rooms):
        # First child: started before the listeners; on stop it waits for
        # the connections to leave their rooms before it leaves Redis.
        factory.rooms.setServiceParent(top)
    GracefulShutdown(factory, factory.metrics, config.limits.shutdownTimeout, reactor).setServiceParent(top)
    for listener in listeners(config, site, reactor):
        listener.setServiceParent(top)
    return top
