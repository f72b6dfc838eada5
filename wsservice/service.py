"""
Assembly: build the running service from a L{ServiceConfig}.  The rooms,
the WebSocket factory, the HTTP resource tree and one listener per
endpoint, under a L{WebSocketService} that drains connections on stop.
"""

from __future__ import annotations

from typing import Any, Callable

from twisted.application import strports
from twisted.application.service import IService, MultiService
from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.web.resource import Resource
from twisted.web.server import Site

from wsservice.api.control import ControlHandler
from wsservice.api.keys import APIKeys
from wsservice.api.resource import APIContext, APIResource
from wsservice.config import ProtocolSettings, ServiceConfig
from wsservice.interfaces import (
    IAuthenticator,
    IAuthenticatorFactory,
    IBrokerStatus,
    IRoomAdmin,
    IRoomCounts,
    IRoomHub,
)
from wsservice.metrics import ServiceMetrics
from wsservice.process import atMost
from wsservice.registry import HandlerRegistry, discoverPlugins
from wsservice.rooms.local import RoomHub
from wsservice.web.frontdoor import FrontDoorFactory
from wsservice.web.resources import buildRoot
from wsservice.websocket._autobahn import prepareMessage
from wsservice.websocket._twisted import boundedRequests
from wsservice.websocket.factory import ServiceFactory


class WebSocketService(MultiService):
    """
    The top of the service tree, parent of the rooms and the listeners.

    @ivar factory: the L{ServiceFactory} of every WebSocket connection.
    @ivar listeners: the listening services.

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
        self.factory = factory
        self._shutdownTimeout = shutdownTimeout
        self._reactor = reactor
        self.listeners: list[IService] = []

    def startService(self) -> None:
        super().startService()
        self._reactor.callWhenRunning(
            self._log.info, "wsservice ready: {count} listeners", count=len(self.listeners)
        )

    def stopService(self) -> Deferred[Any]:
        factory = self.factory
        factory.metrics.draining()
        self._log.info(
            "shutting down: closing {count} connections", count=factory.openCount
        )
        drained = atMost(self._reactor, self._shutdownTimeout, factory.goingAway(), self._giveUp)
        return drained.addCallback(lambda _: MultiService.stopService(self))

    def _giveUp(self) -> None:
        self._log.warn(
            "shutdown timeout: dropping {count} connections", count=self.factory.openCount
        )
        self.factory.abortAll()


def buildRooms(config: ServiceConfig, clock: Any, metrics: ServiceMetrics) -> IRoomHub:
    """
    The room hub: in this process, or across processes through the
    C{--broker} (then it also provides L{IService}, since it owns its
    connections to Redis, and L{IBrokerStatus}).
    """
    handlers = config.handlers
    rooms = dict(
        historySize=handlers.historySize,
        historyBytes=config.limits.maxMessageSize,
        delivered=metrics.roomDelivered,
        pageSize=handlers.presenceList,
        presenceInterval=handlers.presenceInterval,
        crowdLimit=handlers.presenceLimit or 2**62,
        logSize=handlers.recoverySize,
        ttl=handlers.historyTTL,
    )
    if config.brokerURL is None:
        return RoomHub(clock, prepareMessage, **rooms)
    from twisted.internet.endpoints import HostnameEndpoint

    from wsservice.rooms.redis.hub import RedisRoomHub
    from wsservice.rooms.redis.wire import BrokerAddress

    return RedisRoomHub(
        clock,
        prepareMessage,
        lambda address: HostnameEndpoint(clock, address.host, address.port, timeout=5),
        BrokerAddress.fromURL(config.brokerURL),
        drainTimeout=config.limits.shutdownTimeout + 1,
        **rooms,
    )


def listenersFor(config: ServiceConfig, factory: Any, reactor: Any) -> list[IService]:
    """
    One listening service per C{--listen} endpoint.
    """
    return [strports.service(d, factory, reactor=reactor) for d in config.listen]


def buildAuthenticator(config: ServiceConfig, reactor: Any) -> IAuthenticator | None:
    """
    The authenticator C{--auth} names, or C{None} for anonymous clients.
    """
    if config.auth.method is None:
        return None
    factories = {p.name: p for p in discoverPlugins(interface=IAuthenticatorFactory)}
    return factories[config.auth.method](config.auth, reactor)


def buildAPI(config: ServiceConfig, rooms: IRoomHub, factory: ServiceFactory) -> Resource | None:
    """
    The backend API's C{/api} resource, if C{--api-key-file} asked for it;
    the rooms then act on its control messages (disconnects) in this
    process.
    """
    admin = IRoomAdmin(rooms)
    admin.onControl(ControlHandler(factory))
    if not config.api.keyFiles:
        return None
    context = APIContext(rooms=rooms, admin=admin, keys=APIKeys(config.api.keyFiles),
                         maxEventSize=config.limits.maxMessageSize,
                         openConnections=lambda: factory.openCount,
                         nameLimit=config.handlers.maxNameLength, workers=config.workers)
    return APIResource(context)


class QuietSite(Site):
    """
    A site that writes no access log line (the default; C{--log-connections}
    turns it on): at hundreds of API calls a second the line costs a tenth
    of the CPU, and the supervisor relays each worker's.
    """

    def log(self, request: Any) -> None:
        pass


def httpSite(root: Resource, config: ServiceConfig) -> Site:
    """
    A twisted.web site for C{root} that shows no tracebacks and refuses
    request bodies of more than twice C{--max-message-size} (API bodies
    escape what they carry) with 413.  Bodies are JSON, never forms: not
    parsing them as forms spares each POST a MIME parse of its header.
    """
    kind = Site if config.logConnections else QuietSite
    site = kind(root, parsePOSTFormSubmission=False)
    site.displayTracebacks = False
    site.requestFactory = boundedRequests(2 * config.limits.maxMessageSize + 64 * 1024)
    return site


def buildFrontEnd(
    config: ServiceConfig, registry: HandlerRegistry, rooms: IRoomHub,
    metrics: ServiceMetrics, clock: Any,
) -> tuple[FrontDoorFactory, ServiceFactory, Site | None]:
    """
    What every listener serves: the front door, which hands WebSocket
    upgrades to the WebSocket factory and everything else to the HTTP site;
    and the site of the backend API when it has listeners of its own.
    """
    broker = IBrokerStatus(rooms, None)
    factory = ServiceFactory(registry, rooms, ProtocolSettings.fromConfig(config), metrics, clock,
                             idPrefix=f"{broker.node[:6]}-" if broker is not None else "",
                             authenticator=buildAuthenticator(config, clock))
    if broker is not None:
        metrics.watchBroker(lambda: broker.brokerState() == "connected", broker.queuedCount)

    def healthy() -> tuple[bool, str]:
        if factory.draining:
            return False, "shutting down"
        detail = f"ok: {factory.openCount} connections"
        if broker is not None:
            # Still healthy without Redis: rooms keep working on this node.
            detail += f"; broker {broker.brokerState()}"
        return True, detail

    api = buildAPI(config, rooms, factory)
    apiSite = None
    if api is not None and config.api.listen:
        apiRoot = Resource()
        apiRoot.putChild(b"api", api)
        apiSite, api = httpSite(apiRoot, config), None
    site = httpSite(buildRoot(factory, config.staticDir, metrics, healthy, api), config)
    frontDoor = FrontDoorFactory(site, factory, clock, config.limits.openHandshakeTimeout,
                                 metrics.handshakeRefused)
    return frontDoor, factory, apiSite


def buildService(
    config: ServiceConfig,
    registry: HandlerRegistry,
    reactor: Any,
    listeners: Callable[[ServiceConfig, Any, Any], list[IService]] = listenersFor,
) -> WebSocketService:
    """
    Build the whole service from C{config}.

    @param reactor: provides L{IReactorTime} and what C{strports} needs; it
        is passed down, never imported.
    @param listeners: makes the listening services (a worker process
        adopts its parent's sockets instead).
    """
    metrics = ServiceMetrics()
    rooms = buildRooms(config, reactor, metrics)
    counts = IRoomCounts(rooms, None)
    if counts is not None:
        metrics.watchRooms(counts.roomCount)
    frontDoor, factory, apiSite = buildFrontEnd(config, registry, rooms, metrics, reactor)
    top = WebSocketService(factory, config.limits.shutdownTimeout, reactor)
    hub = IService(rooms, None)
    if hub is not None:
        # Started before the listeners; stopped after the drain, when the
        # connections have left their rooms, so it can leave Redis cleanly.
        hub.setServiceParent(top)
    for listener in listeners(config, frontDoor, reactor):
        listener.setServiceParent(top)
        top.listeners.append(listener)
    if apiSite is not None:
        for description in config.api.listen:
            listener = strports.service(description, apiSite, reactor=reactor)
            listener.setServiceParent(top)
            top.listeners.append(listener)
    return top
