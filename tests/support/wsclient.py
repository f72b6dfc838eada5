"""
A small synchronous WebSocket client for the end-to-end tests, on the
C{websockets} library: a real client over a real socket.
"""

from __future__ import annotations

import json
from typing import Any

from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

TIMEOUT = 10


def open_(url: str, *subprotocols: str, **kw: Any) -> ClientConnection:
    """
    Open a WebSocket, offering C{subprotocols} in order.
    """
    kw.setdefault("open_timeout", TIMEOUT)
    kw.setdefault("max_size", None)
    # Unread messages must not stop the client reading (16 by default), or
    # a close frame behind them waits for the close timeout.
    kw.setdefault("max_queue", None)
    return connect(url, subprotocols=list(subprotocols) or None, **kw)


def refusal(url: str, *subprotocols: str, **kw: Any) -> tuple[int, str]:
    """
    The HTTP status and body of a handshake the server refuses.
    """
    try:
        ws = open_(url, *subprotocols, **kw)
    except InvalidStatus as e:
        return e.response.status_code, bytes(e.response.body or b"").decode()
    ws.close()
    raise AssertionError("the handshake was accepted")


def recvJSON(ws: ClientConnection, timeout: float = TIMEOUT) -> dict[str, Any]:
    return json.loads(ws.recv(timeout=timeout))


def recvUntil(ws: ClientConnection, type_: str, timeout: float = TIMEOUT) -> dict[str, Any]:
    """
    Skip JSON events (and binary frames) until one of C{type_} arrives, and
    return it.
    """
    while True:
        message = ws.recv(timeout=timeout)
        if isinstance(message, bytes):
            continue
        event = json.loads(message)
        if event.get("type") == type_:
            return event


def closeCode(ws: ClientConnection, timeout: float = TIMEOUT) -> tuple[int | None, str]:
    """
    Read until the server closes the connection; return its close code and
    reason.
    """
    try:
        while True:
            ws.recv(timeout=timeout)
    except ConnectionClosed as e:
        received = e.rcvd
        return (received.code, received.reason) if received else (None, "")


def recvPresence(ws: ClientConnection, change: str, name: str | None = None,
                 timeout: float = TIMEOUT) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """
    Skip events until a C{presence} event lists C{name} (anyone, if
    C{None}) under C{change} (C{"joined"}, C{"left"} or C{"renamed"}); return
    the event and the entry (C{None} when the event lists no names).
    """
    while True:
        event = recvUntil(ws, "presence", timeout)
        if name is None and event[f"{change}Count"]:
            return event, (event[change] or [None])[0]
        for entry in event[change]:
            if entry.get("name") == name:
                return event, entry
