"""
Every Autobahn name outside its public channel API that wsservice relies
on, in one place: L{ServerProtocolBase}, the Autobahn server protocol with
those internals behind a few named methods, and two fixes that change
nothing Autobahn does.

Autobahn's public API for a connection is C{IWebSocketChannel}
(C{onConnect}, C{onOpen}, C{sendMessage}, C{sendClose}, C{onMessage},
C{onClose}, C{sendPing}, C{sendPong}) and the factory's
C{setProtocolOptions}.  Everything else used here is in L{RELIED_ON} with the
reason, and in L{INITIAL_STATE} and L{HANDSHAKE_STATE};
C{tests/unit/test_internals.py} fails, naming the attribute, when an
installed Autobahn no longer has one.  Why each is needed:

  - C{state} and C{STATE_*}: whether a connection is open, so nothing is
    sent on a closing one.
  - C{sendData}: the one method every frame goes through; overridden so
    frames leave through L{writeFrame} (coalesced per reactor turn by
    L{wsservice.websocket.writes}), and so Autobahn's debug line is not
    formatted on every write.  C{send_queue} is its queue for sync and
    chopped sends, which only those need.
  - C{PreparedMessage.payloadHybi}, C{.doNotCompress}, C{._perMessageCompress}:
    a room's fan-out writes the frame framed once, without the four calls
    of C{sendPreparedMessage} per member.
  - C{sendCloseFrame}, C{dropConnection}: closing with any code, 1001
    included (C{sendClose} takes only 1000 and 3000-4999), and dropping a
    connection that never opened.
  - C{_closeConnection}: a close must follow the bytes coalesced before it.
  - C{failHandshake}, C{wasClean}: a refusal answered with the reason as
    status text and body, logged once, not as an unclean drop.
  - C{maxMessagePayloadSize}: Autobahn applies the incoming size limit to
    outgoing messages too; L{sendUnbounded} lifts it for one send.
  - C{CONFIG_ATTRS}: the protocol options Autobahn copies onto every
    connection unless the protocol class has them (L{withOptions}).
  - C{set_valid_events}, C{peer}: the observable-events bookkeeping that
    nothing here uses, and the peer's name for logs.
  - The names in L{INITIAL_STATE} and L{HANDSHAKE_STATE}: what
    C{_connectionMade} and the opening handshake leave on every connection
    (L{ServerProtocolBase.dropHandshakeState}).
  - The module-level C{pformat}, C{hltype} and C{hlval} of
    C{autobahn.websocket.protocol} and C{autobahn.twisted.websocket}
    (L{EAGER_FORMATTING}): L{deferDebugFormatting}.
  - The factory's C{_batched_timer}, which every connection's ping, pong
    and closing-handshake timeouts go through: L{useTimer} gives it one
    whose cancel is O(1) (L{wsservice.websocket.timers}).
"""

from __future__ import annotations

from collections import deque
from typing import Any, Callable

from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from autobahn.websocket.protocol import PreparedMessage


# What Autobahn keeps of the opening handshake once it is over.  Reads after
# ServerProtocolBase.dropHandshakeState see the class defaults below.
HANDSHAKE_STATE: tuple[str, ...] = (
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

# What Autobahn's _connectionMade sets on every connection, at the values an
# idle connection keeps; the class defaults below are the same values.
INITIAL_STATE: tuple[str, ...] = (
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

#: (owner, attribute, why): the other names this module relies on.
RELIED_ON: tuple[tuple[type, str, str], ...] = (
    (WebSocketServerProtocol, "STATE_CONNECTING", "the state of a connection not yet open"),
    (WebSocketServerProtocol, "STATE_OPEN", "the state of an open connection"),
    (WebSocketServerProtocol, "STATE_CLOSED", "the state of a closed connection"),
    (WebSocketServerProtocol, "SEND_STATE_GROUND", "the initial send state"),
    (WebSocketServerProtocol, "CONFIG_ATTRS", "the options copied onto each connection"),
    (WebSocketServerProtocol, "sendData", "the method every frame goes through"),
    (WebSocketServerProtocol, "sendCloseFrame", "a close with any code"),
    (WebSocketServerProtocol, "dropConnection", "dropping a connection"),
    (WebSocketServerProtocol, "failHandshake", "refusing an opening handshake"),
    (WebSocketServerProtocol, "_closeConnection", "where a connection is closed"),
    (WebSocketServerProtocol, "set_valid_events", "the observable-events set-up"),
    (WebSocketServerProtocol, "_connectionMade", "where the initial state is set"),
)

#: Attributes of a L{PreparedMessage} the fan-out reads.
PREPARED_MESSAGE: tuple[str, ...] = ("payload", "binary", "payloadHybi", "doNotCompress")

#: Attributes a connection has once it exists, besides L{INITIAL_STATE}.
CONNECTION_STATE: tuple[str, ...] = ("state", "peer", "send_queue", "maxMessagePayloadSize")


def useTimer(factory: WebSocketServerFactory, timer: Any) -> None:
    """
    Make C{timer} (txaio's C{IBatchedTimer}: C{call_later} returning
    something with C{cancel}) the one C{factory}'s connections time out
    with.
    """
    if not hasattr(factory, "_batched_timer"):
        raise AttributeError("Autobahn's WebSocketServerFactory has no '_batched_timer'")
    factory._batched_timer = timer


def prepareMessage(payload: bytes, isBinary: bool) -> PreparedMessage:
    """
    Frame one server-to-client message once, for sending to many
    connections (L{ServerProtocolBase.deliverPrepared}).
    """
    return PreparedMessage(payload, isBinary, False, False)


class ServerProtocolBase(WebSocketServerProtocol):
    """
    Autobahn's server protocol with the internals wsservice uses behind a
    few named methods, and an idle connection's state kept small.

    Per-connection state starts as class attributes and becomes an instance
    attribute only when it changes: thousands of idle connections are
    mostly their instance dictionaries.

    @ivar writesStopped: set once nothing more but the close frame is to be
        sent to this connection (a peer too slow to read).
    """

    writesStopped = False

    # Autobahn builds an empty deque (760 bytes) per connection for writes it
    # must queue, which only sync or chopped sends do; see sendData.
    send_queue: Any = ()

    http_headers = http_request_data = http_response_data = http_status_line = None
    http_request_uri = http_request_path = http_request_params = http_request_host = None
    websocket_origin = websocket_protocols = websocket_extensions = _wskey = None

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

    def connectionMade(self) -> None:
        super().connectionMade()
        del self.send_queue

    # -- state --------------------------------------------------------------

    def isOpen(self) -> bool:
        """
        Whether the opening handshake is done and no close has begun.
        """
        return self.state == self.STATE_OPEN

    def isClosed(self) -> bool:
        return self.state == self.STATE_CLOSED

    # -- writing ------------------------------------------------------------

    def sendData(self, data: bytes, sync: bool = False, chopsize: int | None = None) -> None:
        """
        Every frame Autobahn sends goes through here: to L{writeFrame}, or,
        for sync and chopped sends, through Autobahn's own queue.
        """
        if sync or chopsize or self.send_queue:
            if type(self.send_queue) is not deque:
                self.send_queue = deque()
            super().sendData(data, sync, chopsize)
            return
        self.writeFrame(data)

    def writeFrame(self, data: bytes, fanOut: bool = False) -> None:
        """
        Write one frame; C{fanOut} marks a room's fan-out.  Overridden by
        the write path.
        """
        self.transport.write(data)

    def flushWrites(self) -> None:
        """
        Send what L{writeFrame} holds back; called before every close.
        """

    def deliverPrepared(self, message: PreparedMessage) -> None:
        """
        Send a message framed once by L{prepareMessage}: the fan-out's hot
        path, one call per member instead of four.
        """
        if self.state != self.STATE_OPEN or self.writesStopped:
            return
        if self._perMessageCompress is None or message.doNotCompress:
            self.writeFrame(message.payloadHybi, True)
        else:
            self.sendMessage(message.payload, message.binary)

    def sendUnbounded(self, payload: bytes, isBinary: bool) -> None:
        """
        Send one message of any size: Autobahn applies the incoming size
        limit to outgoing messages too (after compression, which never
        doubles a size), and C{--max-message-size} is about what clients may
        send us.
        """
        limit = self.maxMessagePayloadSize
        if limit and len(payload) * 2 >= limit:
            self.maxMessagePayloadSize = 0
            try:
                self.sendMessage(payload, isBinary)
            finally:
                self.maxMessagePayloadSize = limit
        else:
            self.sendMessage(payload, isBinary)

    # -- closing ------------------------------------------------------------

    def closeWith(self, code: int, reason: str) -> None:
        """
        Start the closing handshake with any code, 1001 included; a
        connection still in its opening handshake is dropped.
        """
        if self.state == self.STATE_OPEN:
            self.sendCloseFrame(code=code, reasonUtf8=closeReason(reason))
        elif self.state == self.STATE_CONNECTING:
            self.dropConnection(abort=True)

    def abortConnection(self) -> None:
        """
        Drop the TCP connection now, unless it is closed already.
        """
        if self.state != self.STATE_CLOSED and self.transport is not None:
            self.transport.abortConnection()

    def _closeConnection(self, abort: bool = False) -> None:
        # A close follows the bytes written before it.
        if not abort:
            self.flushWrites()
        super()._closeConnection(abort)

    def failHandshake(self, reason: str, code: int = 400, responseHeaders: Any = None) -> None:
        """
        Refuse the opening handshake with C{code}, the reason as both the
        status text and a plain-text body.  A version Autobahn refuses gets
        426 Upgrade Required with the versions it speaks (RFC 6455 4.4),
        where Autobahn says 400.
        """
        if any(name.lower() == "sec-websocket-version" for name, _ in responseHeaders or ()):
            code = 426
        self.handshakeFailed(code, reason)
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

    def handshakeFailed(self, code: int, reason: str) -> None:
        """
        Called once when an opening handshake is refused, before the answer
        is sent.
        """

    # -- idle memory --------------------------------------------------------

    def dropHandshakeState(self) -> None:
        """
        Forget the request and response of the opening handshake, which
        Autobahn keeps for the life of the connection: nothing reads them
        once the connection is open.

        Also drop every instance attribute that still holds the initial value
        its class attribute holds too.  Reads see the same value, writes
        bring the attribute back, and an idle connection's instance
        dictionary stays in the smallest size that holds the rest.
        """
        instance = self.__dict__
        for name in HANDSHAKE_STATE:
            instance.pop(name, None)
        if instance.get("websocket_extensions_in_use") == []:
            # Only an empty list, where the class holds an empty tuple.
            del instance["websocket_extensions_in_use"]
        cls = type(self)
        for name in INITIAL_STATE:
            if name in instance and instance[name] is getattr(cls, name):
                del instance[name]
        # A dictionary does not shrink when keys are deleted; a copy is sized
        # for what is left.
        self.__dict__ = dict(instance)


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


class _Lazy:
    """
    Stands in for a formatting function (C{pprint.pformat}, Autobahn's
    C{hltype}, C{hlval}): returns a value whose text is built by that
    function only when a log observer formats it.
    """

    def __init__(self, format: Callable[..., Any]) -> None:
        self.format = format

    def __call__(self, *a: Any, **kw: Any) -> "_LazyText":
        return _LazyText(self.format, a, kw)


class _LazyText:
    __slots__ = ("_format", "_a", "_kw")

    def __init__(self, format: Callable[..., Any], a: tuple, kw: dict) -> None:
        self._format, self._a, self._kw = format, a, kw

    def __str__(self) -> str:
        return str(self._format(*self._a, **self._kw))

    __repr__ = __str__

    def __format__(self, spec: str) -> str:
        return format(str(self), spec)


#: (module, name): Autobahn's formatting functions called for a debug line
#: whether debug logging is on or not.
EAGER_FORMATTING: tuple[tuple[str, str], ...] = (
    ("autobahn.websocket.protocol", "pformat"),
    ("autobahn.websocket.protocol", "hltype"),
    ("autobahn.websocket.protocol", "hlval"),
    ("autobahn.twisted.websocket", "hltype"),
    ("autobahn.twisted.websocket", "hlval"),
)


def deferDebugFormatting() -> None:
    """
    Make Autobahn's per-connection and per-read debug formatting lazy;
    idempotent.

    C{WebSocketProtocol._connectionMade} pretty-prints every protocol option
    for a debug log line on every connection, and every read and handshake
    step names its function and peer in colour (C{hltype}, C{hlval}, with
    click) for another, whether debug logging is on or not: a quarter of the
    CPU a handshake cost here, and about 7% of an echo round trip.
    Afterwards the text is built only if the line is actually emitted.
    Worth an upstream issue.
    """
    import importlib

    for moduleName, name in EAGER_FORMATTING:
        module = importlib.import_module(moduleName)
        current = getattr(module, name)
        if not isinstance(current, _Lazy):
            setattr(module, name, _Lazy(current))


def closeReason(reason: str) -> bytes:
    """
    C{reason} as a close frame can carry it: at most 123 bytes of UTF-8,
    cut between characters, never inside one.
    """
    return reason.encode("utf-8", "replace")[:123].decode("utf-8", "ignore").encode("utf-8")
