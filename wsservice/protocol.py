"""
The Autobahn side of the service: subprotocol negotiation, the connection a
handler sees, and the guards around every handler call.

Handlers never see Autobahn.  L{ServiceProtocol} negotiates in C{onConnect},
builds the handler in C{onOpen}, forwards messages and closes, and turns any
exception from a handler into a close with L{CLOSE_INTERNAL_ERROR} for that
connection alone.

Application close codes (documented in the README):

  - 4000 internal error: the handler raised.
  - 4001 too slow: the peer did not read and its send buffer overflowed.
  - 4002 rate limit exceeded: the peer sent messages faster than allowed.
  - 4003 unsupported data: the subprotocol does not take this kind of message.
"""

from __future__ import annotations

import itertools
from collections import deque
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from sys import intern
from types import MappingProxyType
from typing import Any, Callable, Mapping, Sequence
from urllib.parse import urlsplit

from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from autobahn.websocket.protocol import PreparedMessage
from autobahn.websocket.types import ConnectionDeny, ConnectionRequest
from twisted.internet import tcp
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IPushProducer, IReactorTime
from twisted.logger import Logger
from zope.interface import implementer

from wsservice.autobahnfixes import deferDebugFormatting
from wsservice.config import HandlerSettings, Limits
from wsservice.interfaces import (
    IConnection,
    IHandler,
    IHandlerContext,
    IHandlerFactory,
    IRequest,
    IRoomHub,
    IRoomMember,
)
from wsservice.metrics import ServiceMetrics
from wsservice.ratelimit import TokenBucket
from wsservice.registry import HandlerRegistry

CLOSE_GOING_AWAY = 1001
CLOSE_INTERNAL_ERROR = 4000
CLOSE_TOO_SLOW = 4001
CLOSE_RATE_LIMITED = 4002
CLOSE_UNSUPPORTED_DATA = 4003

_connectionIds = itertools.count(1)


@implementer(IRequest)
@dataclass(frozen=True, slots=True)
class Request:
    """
    The upgrade request, copied out of Autobahn's L{ConnectionRequest}.
    """

    path: str
    query: Mapping[str, Sequence[str]]
    headers: Mapping[str, str]
    peer: str
    origin: str | None

    @classmethod
    def fromAutobahn(cls, request: ConnectionRequest) -> "Request":
        # Idle connections are mostly their handshake: the names and the
        # common values of headers are the same on every connection, so
        # they are shared (interned strings are freed with their last user).
        return cls(
            path=request.path,
            query=(
                {k: tuple(v) for k, v in request.params.items()} if request.params else _NO_QUERY
            ),
            headers={intern(k): intern(v) for k, v in request.headers.items()},
            peer=request.peer,
            origin=request.origin,
        )


_NO_QUERY: Mapping[str, Sequence[str]] = MappingProxyType({})


@implementer(IConnection, IRoomMember)
class Connection:
    """
    What a handler holds of its connection: send, close, deliver room events.
    """

    __slots__ = ("_protocol", "id", "subprotocol", "request")

    def __init__(self, protocol: "ServiceProtocol", subprotocol: str, request: Request):
        self._protocol = protocol
        self.id = f"c{next(_connectionIds)}"
        self.subprotocol = subprotocol
        self.request = request

    def sendText(self, text: str) -> None:
        self._protocol.sendOutgoing(text.encode("utf-8"), False)

    def sendBinary(self, data: bytes) -> None:
        self._protocol.sendOutgoing(data, True)

    def deliver(self, message: Any) -> None:
        # The fan-out hot path: one call per member instead of four
        # (through sendPreparedMessage).
        protocol = self._protocol
        if protocol.state != protocol.STATE_OPEN or protocol._tooSlow:
            return
        if protocol._perMessageCompress is None or message.doNotCompress:
            protocol.sendData(message.payloadHybi, now=True)
        else:
            protocol.sendMessage(message.payload, message.binary)

    def close(self, code: int = 1000, reason: str = "") -> None:
        self._protocol.closeWith(code, reason)

    def __repr__(self) -> str:
        return f"<Connection {self.id} {self.subprotocol} {self.request.peer}>"


@implementer(IHandlerContext)
class HandlerContext:
    """
    The per-connection L{IHandlerContext}: shared clock, rooms and settings,
    and a C{callLater} whose faults close this connection only.
    """

    __slots__ = ("clock", "rooms", "settings", "log", "_guard")

    def __init__(
        self,
        clock: IReactorTime,
        rooms: IRoomHub,
        settings: HandlerSettings,
        log: Logger,
        guard: Callable[..., Any],
    ):
        self.clock = clock
        self.rooms = rooms
        self.settings = settings
        self.log = log
        self._guard = guard

    def callLater(self, delay: float, f: Callable[..., Any], *a: Any, **kw: Any) -> IDelayedCall:
        return self.clock.callLater(delay, self._guard, f, *a, **kw)


def prepareMessage(payload: bytes, isBinary: bool) -> PreparedMessage:
    """
    Frame one server-to-client message once, for sending to many
    connections with C{sendPreparedMessage}.
    """
    return PreparedMessage(payload, isBinary, False, False)


def originAllowed(origin: str | None, host: str, patterns: Sequence[str]) -> bool:
    """
    Decide whether a browser page at C{origin} may open a WebSocket to
    C{host}.

    Requests without an C{Origin} header come from non-browser clients and
    are allowed; a page served by this service (same host and port) is
    allowed; anything else must match one of C{patterns} (C{*} wildcards,
    matched against the whole origin, e.g. C{https://*.example.com}).
    """
    if origin is None or origin == "":
        return True
    if origin == "null":
        return "null" in patterns
    if urlsplit(origin).netloc.lower() == host.lower():
        return True
    return any(fnmatchcase(origin.lower(), p.lower()) for p in patterns)


class FanOutPolicy:
    """
    Decides whether a room's fan-out writes go out at once or wait for the
    end of the reactor turn.

    Waiting pays while the connections written to get more than one fan-out
    message per turn, which then leave in one C{send()}; otherwise sending at
    once gets each message to the first members sooner.  The decision
    follows a moving average over turns, so one turn with two messages does
    not switch it, and big rooms, whose turns alternate between one message
    and many, stay coalesced.

    @ivar coalescing: whether fan-out writes wait, for this turn.
    @ivar repeats: fan-out writes in this turn to connections already
        written to in it.
    """

    __slots__ = ("coalescing", "repeats", "_perTurn")

    #: Coalesce above this many fan-out messages per connection per turn.
    THRESHOLD = 1.5
    #: Weight of the newest turn in the moving average.
    WEIGHT = 1 / 8

    def __init__(self) -> None:
        self.coalescing = False
        self.repeats = 0
        self._perTurn = 1.0

    def endTurn(self, connectionsWritten: int) -> None:
        """
        Account for a turn that wrote to C{connectionsWritten} connections
        and decide for the next one.
        """
        if connectionsWritten:
            perTurn = 1 + self.repeats / connectionsWritten
            self._perTurn += (perTurn - self._perTurn) * self.WEIGHT
        self.repeats = 0
        self.coalescing = self._perTurn > self.THRESHOLD


@implementer(IPushProducer)
class _SendBuffer:
    """
    Watches a connection's transport through the producer API: the transport
    pauses us when its buffer is full, and while it is paused every byte we
    write is counted against the connection's send-buffer limit.
    """

    __slots__ = ("paused", "pending")

    def __init__(self) -> None:
        self.paused = False
        self.pending = 0

    def pauseProducing(self) -> None:
        self.paused = True

    def resumeProducing(self) -> None:
        self.paused = False
        self.pending = 0

    def stopProducing(self) -> None:
        self.paused = True


class ServiceProtocol(WebSocketServerProtocol):
    """
    One WebSocket connection: negotiation, limits, and a guarded handler.
    """

    _log = Logger()

    # Per-connection state starts as these class attributes and becomes an
    # instance attribute only when it changes: thousands of idle connections
    # are mostly their instance dictionaries.
    _factoryChoice: IHandlerFactory | None = None
    _handler: IHandler | None = None
    _connection: Connection | None = None
    _sendBuffer: _SendBuffer | None = None
    _bucket: TokenBucket | None = None
    _tooSlow = False
    _metricLabels: str | None = None
    _refusalLogged = False
    _direct = True
    # Present in the instance only from a connection's first write in a
    # reactor turn to the end of the turn: the writes waiting to be sent
    # together, or () after a first write that was sent at once.
    _pending: list[bytes] | tuple[()] | None = None
    # Autobahn builds an empty deque (760 bytes) per connection for writes it
    # must queue, which only sync or chopped sends do; see sendData.
    send_queue: Any = ()

    # What Autobahn keeps of the opening handshake once it is over; see
    # _dropHandshakeState.  Reads after the drop see these class defaults.
    _HANDSHAKE_STATE = (
        "http_headers",
        "http_request_data",
        "http_response_data",
        "http_status_line",
        "http_request_uri",
        "http_request_path",
        "http_request_params",
        "http_request_host",
        "websocket_origin",
        "websocket_protocols",
        "websocket_extensions",
        "_wskey",
    )
    http_headers = http_request_data = http_response_data = http_status_line = None
    http_request_uri = http_request_path = http_request_params = http_request_host = None
    websocket_origin = websocket_protocols = websocket_extensions = _wskey = None

    # Autobahn sets these on every connection, and an idle connection keeps
    # them at these values; see _dropHandshakeState.
    _INITIAL_STATE = (
        "triggered",
        "wasMaxFramePayloadSizeExceeded",
        "wasMaxMessagePayloadSizeExceeded",
        "closedByMe",
        "failedByMe",
        "droppedByMe",
        "wasClean",
        "wasNotCleanReason",
        "wasServerConnectionDropTimeout",
        "wasOpenHandshakeTimeout",
        "wasCloseHandshakeTimeout",
        "wasServingFlashSocketPolicyFile",
        "localCloseCode",
        "localCloseReason",
        "remoteCloseCode",
        "remoteCloseReason",
        "openHandshakeTimeoutCall",
        "closeHandshakeTimeoutCall",
        "autoPingTimeoutCall",
        "autoPingPending",
        "autoPingPendingCall",
        "autoPingPendingSent",
        "autoPingPendingSeq",
        "trackedTimings",
        "_perMessageCompress",
        "send_state",
        "inside_message",
        "current_frame",
        "data",
    )
    triggered = wasMaxFramePayloadSizeExceeded = wasMaxMessagePayloadSizeExceeded = False
    closedByMe = failedByMe = droppedByMe = wasClean = False
    wasServerConnectionDropTimeout = wasOpenHandshakeTimeout = False
    wasCloseHandshakeTimeout = wasServingFlashSocketPolicyFile = inside_message = False
    wasNotCleanReason = localCloseCode = localCloseReason = None
    remoteCloseCode = remoteCloseReason = current_frame = None
    openHandshakeTimeoutCall = closeHandshakeTimeoutCall = autoPingTimeoutCall = None
    autoPingPending = autoPingPendingCall = autoPingPendingSent = None
    trackedTimings = _perMessageCompress = None
    autoPingPendingSeq = 0
    send_state = WebSocketServerProtocol.SEND_STATE_GROUND
    data = b""
    websocket_extensions_in_use: Any = ()

    def set_valid_events(self, valid_events: Any = None) -> None:
        """
        Skip Autobahn's observable-events bookkeeping (a list and a dict per
        connection): handlers are called directly, and nothing here
        registers listeners with C{on()}.
        """

    # -- opening handshake --------------------------------------------------

    def connectionMade(self) -> None:
        super().connectionMade()
        del self.send_queue
        self._watchSendBuffer()
        # Plain TCP only: a TLS transport must see every byte.
        if not isinstance(self.transport, tcp.Connection) or getattr(self.transport, "TLS", False):
            self._direct = False

    def _watchSendBuffer(self) -> None:
        transport = self.transport
        # Behind WebSocketResource the HTTP channel that handed us the
        # transport is still its producer; it has no more work to do.
        if getattr(transport, "producer", None) is not None:
            transport.unregisterProducer()
        self._sendBuffer = _SendBuffer()
        try:
            transport.registerProducer(self._sendBuffer, True)
        except Exception:
            self._sendBuffer = None

    def onConnect(self, request: ConnectionRequest) -> str | None:
        factory: ServiceFactory = self.factory
        settings = factory.settings
        peer = request.peer
        if factory.draining:
            raise self._deny(peer, 503, "server is shutting down", "shutting-down")
        if 0 < settings.limits.maxConnections <= factory.openCount:
            raise self._deny(peer, 503, "too many connections", "max-connections")
        host = request.headers.get("host", "")
        if not originAllowed(request.origin, host, settings.allowedOrigins):
            raise self._deny(
                peer, 403, f"origin {request.origin} is not allowed", "origin"
            )
        chosen = factory.registry.select(request.protocols, settings.defaultSubprotocol)
        if chosen is None:
            supported = ", ".join(factory.registry.names)
            if request.protocols:
                reason = (
                    f"unsupported subprotocol {', '.join(request.protocols)}; "
                    f"supported: {supported}"
                )
            else:
                reason = f"a subprotocol is required; supported: {supported}"
            raise self._deny(peer, 400, reason, "subprotocol")
        self._factoryChoice = chosen
        self._connection = Connection(self, chosen.subprotocol, Request.fromAutobahn(request))
        # A client that offered nothing must not be answered with a name.
        return chosen.subprotocol if request.protocols else None

    def _deny(self, peer: str, code: int, reason: str, label: str) -> ConnectionDeny:
        self._log.info(
            "refused {peer}: {code} {reason}", peer=peer, code=code, reason=reason
        )
        self.factory.metrics.handshakeRefused(label)
        self._refusalLogged = True
        return ConnectionDeny(code, reason)

    def failHandshake(
        self, reason: str, code: int = 400, responseHeaders: Any = None
    ) -> None:
        """
        Refuse the opening handshake with C{code}, the reason as both the
        status text and a plain-text body, and one log line.
        """
        if not self._refusalLogged:
            self._log.info(
                "refused {peer}: {code} {reason}", peer=self.peer, code=code, reason=reason
            )
            self.factory.metrics.handshakeRefused("handshake")
        body = (reason + "\n").encode("utf-8")
        status = reason.replace("\r", " ").replace("\n", " ")
        head = [
            f"HTTP/1.1 {code} {status}",
            "Content-Type: text/plain; charset=utf-8",
            f"Content-Length: {len(body)}",
            "Connection: close",
        ]
        head += [f"{name}: {value}" for name, value in responseHeaders or ()]
        self.sendData(("\r\n".join(head) + "\r\n\r\n").encode("utf-8") + body)
        # A refusal is an ordinary outcome, not an unclean drop worth a warning.
        self.wasClean = True
        self.dropConnection(abort=False)

    # -- open connection ----------------------------------------------------

    def onOpen(self) -> None:
        factory: ServiceFactory = self.factory
        connection, choice = self._connection, self._factoryChoice
        assert connection is not None and choice is not None
        factory.opened(self)
        subprotocol = connection.subprotocol
        self._metricLabels = subprotocol
        factory.metrics.opened(subprotocol)
        rate = factory.settings.limits.maxMessagesPerSecond
        if rate > 0:
            self._bucket = TokenBucket(rate, max(2 * rate, 10.0), factory.clock.seconds())
        self._log.info(
            "open {peer} {subprotocol} {path} as {id}",
            peer=connection.request.peer,
            subprotocol=subprotocol,
            path=connection.request.path,
            id=connection.id,
        )
        context = HandlerContext(
            factory.clock,
            factory.rooms,
            factory.settings.handlers,
            factory.handlerLog(subprotocol),
            self.guarded,
        )
        handler = self.guarded(choice, connection, context)
        if handler is not None:
            self._handler = handler
            self.guarded(handler.onOpen)
        self._dropHandshakeState()

    def _dropHandshakeState(self) -> None:
        """
        Forget the request and response of the opening handshake, which
        Autobahn keeps for the life of the connection: the handler has its
        L{Request}, and nothing reads them once the connection is open.

        Also drop every instance attribute that still holds the initial value
        its class attribute holds too.  Reads see the same value, writes
        bring the attribute back, and an idle connection's instance
        dictionary stays in the smallest size that holds the rest.
        """
        instance = self.__dict__
        for name in self._HANDSHAKE_STATE:
            instance.pop(name, None)
        instance.pop("_factoryChoice", None)
        if instance.get("websocket_extensions_in_use") == []:
            # Only an empty list, where the class holds an empty tuple.
            del instance["websocket_extensions_in_use"]
        cls = type(self)
        for name in self._INITIAL_STATE:
            if name in instance and instance[name] is getattr(cls, name):
                del instance[name]
        # A dictionary does not shrink when keys are deleted; a copy is sized
        # for what is left.
        self.__dict__ = dict(instance)

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        handler = self._handler
        if handler is None or self._tooSlow:
            return
        self.factory.metrics.received(self._metricLabels, len(payload))
        bucket = self._bucket
        if bucket is not None and not bucket.take(self.factory.clock.seconds()):
            self._log.warn(
                "closing {id} ({peer}): over {rate} messages per second",
                id=self._connection.id,
                peer=self._connection.request.peer,
                rate=bucket.rate,
            )
            self.closeWith(CLOSE_RATE_LIMITED, "rate limit exceeded")
            return
        self.guarded(handler.onMessage, payload, isBinary)

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        factory: ServiceFactory = self.factory
        if self._connection is None or self._metricLabels is None:
            return
        factory.closed(self)
        factory.metrics.closedWith(self._metricLabels, code)
        self._log.info(
            "close {peer} {id} code={code} reason={reason!r} clean={clean}",
            peer=self._connection.request.peer,
            id=self._connection.id,
            code=code,
            reason=reason,
            clean=wasClean,
        )
        handler, self._handler = self._handler, None
        if handler is not None:
            try:
                handler.onClose(wasClean, code, reason)
            except Exception:
                self._log.failure(
                    "handler {subprotocol} failed while closing {id}",
                    subprotocol=self._metricLabels,
                    id=self._connection.id,
                )

    def guarded(self, f: Callable[..., Any], *a: Any, **kw: Any) -> Any:
        """
        Call handler code; on an exception, log it and close this connection
        with L{CLOSE_INTERNAL_ERROR}, leaving every other connection alone.
        """
        try:
            return f(*a, **kw)
        except Exception:
            connection = self._connection
            self._log.failure(
                "handler {subprotocol} failed on {id} ({peer}); closing it",
                subprotocol=connection.subprotocol if connection else "?",
                id=connection.id if connection else "?",
                peer=connection.request.peer if connection else "?",
            )
            self.factory.metrics.handlerError(connection.subprotocol if connection else "?")
            self.closeWith(CLOSE_INTERNAL_ERROR, "internal error")
            return None

    # -- sending ------------------------------------------------------------

    def sendOutgoing(self, payload: bytes, isBinary: bool) -> None:
        """
        Send one message unless the connection is closing or too slow.
        """
        if self.state != self.STATE_OPEN or self._tooSlow:
            return
        limit = self.maxMessagePayloadSize
        if limit and len(payload) * 2 >= limit:
            # Autobahn applies the incoming size limit to outgoing messages
            # too (after compression, which never doubles a size);
            # --max-message-size is about what clients may send us.
            self.maxMessagePayloadSize = 0
            try:
                self.sendMessage(payload, isBinary)
            finally:
                self.maxMessagePayloadSize = limit
        else:
            self.sendMessage(payload, isBinary)
        self.factory.metrics.sent(self._metricLabels, len(payload))

    def sendData(
        self, data: bytes, sync: bool = False, chopsize: int | None = None, *, now: bool = False
    ) -> None:
        """
        Write to the transport, counting bytes written while the transport is
        paused; past the send-buffer limit the connection is closed as too
        slow.  Autobahn's own version formats a debug log line on every write.

        Writes wait for the end of the reactor turn and go out together, one
        C{send()} per connection per turn.  With C{now}, a connection's first
        write in the turn goes out at once and only later ones wait, unless
        the factory's L{FanOutPolicy} says to coalesce.
        """
        if sync or chopsize or self.send_queue:
            if type(self.send_queue) is not deque:
                self.send_queue = deque()
            return super().sendData(data, sync, chopsize)
        buffer = self._sendBuffer
        if buffer is not None and buffer.paused:
            buffer.pending += len(data)
            if buffer.pending > self.factory.settings.limits.maxSendBuffer and not self._tooSlow:
                self._closeTooSlow()
                if self.state == self.STATE_CLOSED:
                    return
        pending = self._pending
        if pending is not None:
            if now:
                self.factory.fanOutPolicy.repeats += 1
            if pending:
                pending.append(data)
            else:
                self._pending = [data]
        elif self._direct and self.transport.connected:
            # Going around the transport spares the two epoll_ctl calls and
            # the doWrite dispatch it spends per connection per write burst,
            # the top of the fan-out profile (bench/RESULTS.md).  Waiting
            # for the end of the turn suits replies: a turn's replies to many
            # clients go out together, and the clients' next requests arrive
            # together.  A room's fan-out is already one burst, and sending
            # as it goes lets the first members have the message while the
            # rest are visited; but while several fan-outs reach the same
            # connections in each turn, coalescing them saves more than
            # that, and fan-outs wait too.  The marker of a write sent at
            # once is the empty tuple rather than a list, so that a delivery
            # allocates nothing the garbage collector tracks: its pauses
            # were the p99 at low rates.
            factory = self.factory
            factory.scheduleFlush(self)
            if now and not factory.fanOutPolicy.coalescing:
                self._pending = ()
                self._writeNow(data)
            else:
                self._pending = [data]
        else:
            self.transport.write(data)

    def flushWrites(self) -> None:
        """
        Send what L{sendData} coalesced in this reactor turn.
        """
        pending = self.__dict__.pop("_pending", None)
        transport = self.transport
        if not pending or transport is None or not transport.connected:
            return
        self._writeNow(pending[0] if len(pending) == 1 else b"".join(pending))

    def _writeNow(self, data: bytes) -> None:
        """
        Send C{data} straight to the socket when the transport has nothing
        queued, and what the socket does not take through the transport.
        """
        transport = self.transport
        if not transport.dataBuffer and not transport._tempDataBuffer:
            try:
                sent = transport.socket.send(data)
            except OSError:
                sent = 0  # EAGAIN or a dead socket: the transport handles both
            if sent == len(data):
                return
            data = data[sent:]
        transport.write(data)

    def _closeConnection(self, abort: bool = False) -> None:
        # A close follows the bytes written before it.
        if not abort:
            self.flushWrites()
        super()._closeConnection(abort)

    def _closeTooSlow(self) -> None:
        self._tooSlow = True
        connection = self._connection
        self._log.warn(
            "closing {id} ({peer}): too slow, over {limit} bytes waiting to be sent",
            id=connection.id if connection else "?",
            peer=connection.request.peer if connection else self.peer,
            limit=self.factory.settings.limits.maxSendBuffer,
        )
        self.factory.metrics.slowReaderClosed()
        # The close frame queues behind data the peer is not reading: give it
        # the close handshake timeout to arrive, then drop the connection.
        self.closeWith(CLOSE_TOO_SLOW, "too slow")
        self.factory.clock.callLater(
            self.factory.settings.limits.closeHandshakeTimeout, self._abort
        )

    def _abort(self) -> None:
        if self.state != self.STATE_CLOSED and self.transport is not None:
            self.transport.abortConnection()

    def closeWith(self, code: int, reason: str) -> None:
        """
        Start the closing handshake with any code, 1001 included (Autobahn's
        C{sendClose} only takes 1000 and 3000-4999).
        """
        if self.state == self.STATE_OPEN:
            self.sendCloseFrame(code=code, reasonUtf8=reason.encode("utf-8")[:123])
        elif self.state == self.STATE_CONNECTING:
            self.dropConnection(abort=True)


class ServiceFactory(WebSocketServerFactory):
    """
    Makes L{ServiceProtocol}s and holds what they share: the handler
    registry, the rooms, the clock, the limits and the set of open
    connections.
    """

    protocol = ServiceProtocol

    def __init__(
        self,
        registry: HandlerRegistry,
        rooms: IRoomHub,
        settings: "ProtocolSettings",
        metrics: ServiceMetrics,
        clock: IReactorTime,
    ) -> None:
        super().__init__()
        deferDebugFormatting()
        self.registry = registry
        self.settings = settings
        self.metrics = metrics
        self.clock = clock
        self.rooms = rooms
        self.draining = False
        self.openProtocols: set[ServiceProtocol] = set()
        self._unflushed: list[ServiceProtocol] = []
        self.fanOutPolicy = FanOutPolicy()
        self._allClosed: list[Deferred[None]] = []
        self._handlerLogs: dict[str, Logger] = {}
        limits = settings.limits
        self.setProtocolOptions(
            # Every option is set: Autobahn's defaults are unlimited sizes,
            # failing by dropping TCP (peers see 1006, not 1009/1007) and no
            # keepalive.
            maxFramePayloadSize=limits.maxMessageSize,
            maxMessagePayloadSize=limits.maxMessageSize,
            failByDrop=False,
            utf8validateIncoming=True,
            openHandshakeTimeout=limits.openHandshakeTimeout,
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
                _acceptDeflate if settings.perMessageDeflate else _refuseExtensions
            ),
        )
        self.protocol = withOptions(self.protocol, self)

    def handlerLog(self, subprotocol: str) -> Logger:
        """
        The logger handlers of C{subprotocol} share.
        """
        log = self._handlerLogs.get(subprotocol)
        if log is None:
            log = self._handlerLogs[subprotocol] = Logger(namespace=f"wsservice.handlers.{subprotocol}")
        return log

    def scheduleFlush(self, protocol: ServiceProtocol) -> None:
        """
        Call C{protocol.flushWrites()} once this reactor turn is over.
        """
        if not self._unflushed:
            self.clock.callLater(0, self._flushAll)
        self._unflushed.append(protocol)

    def _flushAll(self) -> None:
        self.fanOutPolicy.endTurn(len(self._unflushed))
        unflushed, self._unflushed = self._unflushed, []
        for protocol in unflushed:
            try:
                protocol.flushWrites()
            except Exception:
                protocol._log.failure("flushing writes to {peer}", peer=protocol.peer)
                if protocol.transport is not None:
                    protocol.transport.abortConnection()

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

    def abortAll(self) -> None:
        """
        Drop every connection still open.
        """
        for protocol in list(self.openProtocols):
            if protocol.transport is not None:
                protocol.transport.abortConnection()


def withOptions(
    protocol: type[WebSocketServerProtocol], factory: WebSocketServerFactory
) -> type[WebSocketServerProtocol]:
    """
    A subclass of C{protocol} that holds C{factory}'s protocol options as
    class attributes.

    Autobahn copies every option from the factory onto each new connection,
    unless the protocol already has it: about thirty instance attributes per
    connection, a quarter of an idle connection's memory.  As a bonus the
    options are in place when Autobahn's C{connectionMade} sets
    C{TCP_NODELAY}, which otherwise finds no C{tcpNoDelay} and silently
    leaves Nagle's algorithm on.
    """
    options = {
        name: staticmethod(value) if callable(value) else value
        for name in protocol.CONFIG_ATTRS
        for value in [getattr(factory, name)]
    }
    return type(protocol.__name__, (protocol,), {**options, "__module__": protocol.__module__})


def _refuseExtensions(offers: list[Any]) -> None:
    return None


def _acceptDeflate(offers: list[Any]) -> Any:
    from autobahn.websocket.compress import (
        PerMessageDeflateOffer,
        PerMessageDeflateOfferAccept,
    )

    for offer in offers:
        if isinstance(offer, PerMessageDeflateOffer):
            return PerMessageDeflateOfferAccept(offer)
    return None


@dataclass(frozen=True)
class ProtocolSettings:
    """
    The part of the configuration the WebSocket layer needs.
    """

    limits: Limits
    handlers: HandlerSettings
    defaultSubprotocol: str | None
    allowedOrigins: tuple[str, ...] = ()
    perMessageDeflate: bool = False
