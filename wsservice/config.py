"""
The typed configuration that flows from the command line into the service.

L{wsservice.tap.Options} parses and validates; everything below it sees only
these frozen objects.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class HandlerSettings:
    """
    Settings the built-in handlers read through L{IHandlerContext.settings}.

    @ivar clockInterval: seconds between two clock ticks.
    @ivar historySize: chat messages a room keeps for newcomers; 0 disables.
    @ivar historyTTL: seconds a room's history and recovery log outlive its
        last message or join.
    @ivar recoverySize: events each room's recovery log keeps, from which a
        client that reconnects gets what it missed; 0 disables recovery.
    @ivar maxNameLength: longest chat name, in characters.
    @ivar presenceList: members per page (a welcome's first page, and each
        page asked for), and the most names a presence event lists per kind.
    @ivar presenceInterval: seconds over which a room's joins, leaves and
        renames are gathered into one presence event.
    @ivar presenceLimit: rooms with more members than this send presence
        events with counts only, no names; 0 is unlimited.
    """

    clockInterval: float = 1.0
    historySize: int = 50
    historyTTL: float = 86400.0
    recoverySize: int = 1000
    maxNameLength: int = 32
    presenceList: int = 100
    presenceInterval: float = 0.25
    presenceLimit: int = 1000


@dataclass(frozen=True)
class Limits:
    """
    Per-connection and per-process protections.

    @ivar maxMessageSize: largest incoming message (and frame), in bytes;
        larger ones close the connection with 1009.
    @ivar maxSendBuffer: bytes that may wait in a connection's outgoing
        buffer before it is closed as too slow (4001).
    @ivar maxMessagesPerSecond: sustained incoming message rate per
        connection (bursts of twice this are allowed), for every handler; 0
        is off; C{None} leaves it to each handler's own default (chat 100,
        echo and clock none).
    @ivar rateLimitGrace: seconds a connection may stay over its rate, read
        only as fast as the rate allows, before it is closed with 4002.
    @ivar maxConnections: open WebSocket connections per process; 0 is off.
    @ivar pingInterval: seconds between server pings; 0 disables them.
    @ivar pingTimeout: seconds to wait for a pong before closing.
    @ivar openHandshakeTimeout: seconds a client may take to send its
        first request head (the front door's deadline).
    @ivar closeHandshakeTimeout: seconds to wait for the peer's close frame.
    @ivar shutdownTimeout: seconds a graceful shutdown waits for clients to
        finish their closing handshakes.
    """

    maxMessageSize: int = 1024 * 1024
    maxSendBuffer: int = 4 * 1024 * 1024
    maxMessagesPerSecond: float | None = None
    rateLimitGrace: float = 5.0
    maxConnections: int = 10000
    pingInterval: float = 30.0
    pingTimeout: float = 10.0
    openHandshakeTimeout: float = 10.0
    closeHandshakeTimeout: float = 5.0
    shutdownTimeout: float = 5.0


@dataclass(frozen=True)
class AuthSettings:
    """
    How clients prove who they are (the C{--auth-*} options).

    @ivar method: the authenticator plugin's name, or C{None}: anonymous.
    @ivar secretFile: the shared secret of HS256 tokens.
    @ivar publicKeyFile: a PEM public key or a JWKS file, for RS256, ES256,
        EdDSA and the like.
    @ivar algorithm: the one algorithm tokens must use (by default the key's).
    @ivar audience: the C{aud} tokens must carry, if any.
    @ivar issuer: the C{iss} tokens must carry, if any.
    @ivar url: where the C{hook} authenticator asks.
    @ivar forwardHeaders: the request headers the hook is sent.
    @ivar timeout: seconds the hook may take; then the handshake gets 503.
    @ivar cookie: the cookie that may carry a token.
    @ivar allowQuery: whether C{?token=} may carry one.
    @ivar grace: seconds a connection outlives its identity's expiry before
        it is closed with 4100, time for a client to refresh.
    """

    method: str | None = None
    secretFile: Path | None = None
    publicKeyFile: Path | None = None
    algorithm: str | None = None
    audience: str | None = None
    issuer: str | None = None
    url: str | None = None
    forwardHeaders: tuple[str, ...] = ("cookie", "authorization")
    timeout: float = 5.0
    cookie: str | None = None
    allowQuery: bool = False
    grace: float = 30.0


@dataclass(frozen=True)
class APISettings:
    """
    The backend API (the C{--api-*} options).

    @ivar keyFiles: files of the keys that open it; none: no API.
    @ivar listen: endpoints of its own to serve it on; none: under C{/api}
        of the public listeners.
    """

    keyFiles: tuple[Path, ...] = ()
    listen: tuple[str, ...] = ()


@dataclass(frozen=True)
class ServiceConfig:
    """
    Everything needed to build the service.

    @ivar listen: Twisted server endpoint descriptions, one listener each.
    @ivar staticDir: the directory served over HTTP.
    @ivar defaultSubprotocol: the handler for clients that offer no
        subprotocol, or C{None} to refuse them.
    @ivar allowedOrigins: C{Origin} patterns (C{*} wildcards) allowed to
        open WebSockets; requests without an C{Origin} header are allowed.
        Empty means same-origin only.
    @ivar perMessageDeflate: accept the permessage-deflate extension.
    @ivar brokerURL: C{redis://host:port/db} to span rooms across processes,
        or C{None} for the in-process hub.
    @ivar workers: how many worker processes share the listeners.
    @ivar logConnections: log a line for each connection opened and closed,
        and each HTTP request (C{--log-connections}; off by default, as such
        lines are a quarter of a handshake's CPU).
    @ivar auth: how clients prove who they are.
    @ivar api: the backend API, if any.
    """

    listen: tuple[str, ...]
    staticDir: Path
    defaultSubprotocol: str | None = "chat"
    handlers: HandlerSettings = field(default_factory=HandlerSettings)
    limits: Limits = field(default_factory=Limits)
    allowedOrigins: tuple[str, ...] = ()
    perMessageDeflate: bool = False
    brokerURL: str | None = None
    workers: int = 1
    logConnections: bool = False
    auth: AuthSettings = field(default_factory=AuthSettings)
    api: APISettings = field(default_factory=APISettings)


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
    logConnections: bool = False
    auth: AuthSettings = field(default_factory=AuthSettings)

    @classmethod
    def fromConfig(cls, config: ServiceConfig) -> "ProtocolSettings":
        return cls(
            limits=config.limits,
            handlers=config.handlers,
            defaultSubprotocol=config.defaultSubprotocol,
            allowedOrigins=config.allowedOrigins,
            perMessageDeflate=config.perMessageDeflate,
            logConnections=config.logConnections,
            auth=config.auth,
        )
