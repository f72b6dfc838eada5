"""
What a handler holds: its L{Connection}, the upgrade L{Request} and its
L{HandlerContext}.  They speak only to the protocol's public methods
(C{sendOutgoing}, C{deliverPrepared}, C{closeWith}).
"""

from __future__ import annotations

from dataclasses import dataclass
from sys import intern
from types import MappingProxyType
from typing import Any, Callable, Mapping, Protocol, Sequence

from autobahn.websocket.types import ConnectionRequest
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from zope.interface import implementer

from wsservice.auth.carriers import withoutCredentials
from wsservice.auth.identity import Identity
from wsservice.config import HandlerSettings
from wsservice.interfaces import IConnection, IHandlerContext, IRequest, IRoomHub, IRoomMember

_NO_QUERY: Mapping[str, Sequence[str]] = MappingProxyType({})


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
    def fromAutobahn(cls, request: ConnectionRequest, credentials: bool = True) -> "Request":
        """
        The request a handler sees; without C{credentials}, no token can be
        read from it (L{wsservice.auth.carriers.withoutCredentials}).
        """
        headers, query = request.headers, request.params
        if not credentials:
            headers, query = withoutCredentials(headers, query)
        # Idle connections are mostly their handshake: the names and the
        # common values of headers are the same on every connection, so
        # they are shared (interned strings are freed with their last user).
        return cls(
            path=request.path,
            query={k: tuple(v) for k, v in query.items()} if query else _NO_QUERY,
            headers={intern(k): intern(v) for k, v in headers.items()},
            peer=request.peer,
            origin=request.origin,
        )


class Channel(Protocol):
    """
    What a L{Connection} needs of its protocol (L{ServiceProtocol}).
    """

    def sendOutgoing(self, payload: bytes, isBinary: bool) -> None: ...

    def deliverPrepared(self, message: Any) -> None: ...

    def closeWith(self, code: int, reason: str) -> None: ...

    def refreshIdentity(self, token: str) -> Deferred[Any]: ...


@implementer(IConnection, IRoomMember)
class Connection:
    """
    What a handler holds of its connection: send, close, deliver room events,
    and who the client is.
    """

    __slots__ = ("_protocol", "id", "subprotocol", "request", "identity")

    def __init__(self, protocol: Channel, id: str, subprotocol: str,
                 request: Request, identity: Identity | None = None) -> None:
        self._protocol = protocol
        self.id = id
        self.subprotocol = subprotocol
        self.request = request
        self.identity = identity

    def refresh(self, token: str) -> Deferred[Identity]:
        return self._protocol.refreshIdentity(token)

    def sendText(self, text: str) -> None:
        self._protocol.sendOutgoing(text.encode("utf-8"), False)

    def sendBinary(self, data: bytes) -> None:
        self._protocol.sendOutgoing(data, True)

    def deliver(self, message: Any) -> None:
        self._protocol.deliverPrepared(message)

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
