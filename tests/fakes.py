"""
Test doubles for unit tests of one class: a connection that records what a
handler sends.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from twisted.internet.task import Clock
from twisted.logger import Logger
from zope.interface import implementer

from wsservice.config import HandlerSettings
from wsservice.hub import RoomHub
from wsservice.interfaces import IConnection, IHandlerContext, IRequest, IRoomMember


@implementer(IRequest)
@dataclass
class FakeRequest:
    path: str = "/"
    query: dict[str, list[str]] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    peer: str = "tcp4:127.0.0.1:1"
    origin: str | None = None


@implementer(IConnection, IRoomMember)
class FakeConnection:
    """
    Records texts, binaries, room deliveries and the close.
    """

    _ids = 0

    def __init__(self, path: str = "/", subprotocol: str = "chat", **query: str) -> None:
        FakeConnection._ids += 1
        self.id = f"f{FakeConnection._ids}"
        self.subprotocol = subprotocol
        self.request = FakeRequest(path=path, query={k: [v] for k, v in query.items()})
        self.sent: list[Any] = []
        self.closed: tuple[int, str] | None = None

    def sendText(self, text: str) -> None:
        self.sent.append(text)

    def sendBinary(self, data: bytes) -> None:
        self.sent.append(data)

    def deliver(self, message: tuple[bytes, bool]) -> None:
        payload, isBinary = message
        self.sent.append(payload if isBinary else payload.decode("utf-8"))

    def close(self, code: int = 1000, reason: str = "") -> None:
        self.closed = (code, reason)

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(m) for m in self.sent if isinstance(m, str)]


@implementer(IHandlerContext)
class FakeContext:
    """
    A context with a L{Clock}, a real L{RoomHub} and default settings.
    """

    def __init__(self, settings: HandlerSettings | None = None, rooms: RoomHub | None = None,
                 clock: Clock | None = None) -> None:
        self.clock = clock or Clock()
        self.settings = settings or HandlerSettings()
        self.rooms = rooms or RoomHub(self.clock, lambda payload, isBinary: (payload, isBinary),
                                      historySize=self.settings.historySize)
        self.log = Logger()

    def callLater(self, delay, f, *a, **kw):
        return self.clock.callLater(delay, f, *a, **kw)
