"""
The decisions of an opening handshake, as pure functions: may this client
connect, and which handler serves it.

Nothing here sends, logs or counts; L{wsservice.websocket.protocol} does,
with what L{negotiate} returns.
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Sequence
from urllib.parse import urlsplit

from wsservice.config import ProtocolSettings
from wsservice.interfaces import IHandlerFactory
from wsservice.registry import HandlerRegistry


@dataclass(frozen=True)
class Refusal:
    """
    Why a handshake is refused: the HTTP status and reason the client gets,
    and the label of C{wsservice_handshakes_refused_total}.
    """

    code: int
    reason: str
    label: str


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


def negotiate(
    offered: Sequence[str],
    host: str,
    origin: str | None,
    settings: ProtocolSettings,
    registry: HandlerRegistry,
    openCount: int,
    draining: bool,
) -> IHandlerFactory | Refusal:
    """
    The handler for a client that offered the subprotocols C{offered}, in
    its order, from a page at C{origin} to C{host}; or why it is refused.
    """
    if draining:
        return Refusal(503, "server is shutting down", "shutting-down")
    if 0 < settings.limits.maxConnections <= openCount:
        return Refusal(503, "too many connections", "max-connections")
    if not originAllowed(origin, host, settings.allowedOrigins):
        return Refusal(403, f"origin {origin} is not allowed", "origin")
    chosen = registry.select(offered, settings.defaultSubprotocol)
    if chosen is not None:
        return chosen
    supported = ", ".join(registry.names)
    if offered:
        reason = f"unsupported subprotocol {', '.join(offered)}; supported: {supported}"
    else:
        reason = f"a subprotocol is required; supported: {supported}"
    return Refusal(400, reason, "subprotocol")
