"""
Test doubles for handler plugins: unit-test a handler without a network,
a reactor or Autobahn.

L{FakeConnection} records what the handler sends and how it closes;
L{FakeContext} lends it a L{task.Clock} and a real in-memory room hub, so
timers advance only when the test says and room events come back at once::

    from wsservice.testing import FakeConnection, FakeContext

    def test_shout_reaches_everyone_on_the_path_upper_cased():
        context = FakeContext()
        alice, bob = FakeConnection("/yard"), FakeConnection("/yard")
        shouter = ShoutHandler(alice, context)
        shouter.onOpen()
        ShoutHandler(bob, context).onOpen()
        shouter.onMessage(b"hi", False)
        assert bob.events()[-1]["message"] == "HI"
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from typing import Any

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock
from twisted.logger import Logger
from zope.interface import implementer

from wsservice.config import HandlerSettings
from wsservice.interfaces import IConnection, IHandlerContext, IRequest, IRoomMember
from wsservice.rooms.local import RoomHub

_ids = itertools.count(1)


@implementer(IRequest)
@dataclass
class FakeRequest:
    """
    An upgrade request: a path, a query, headers, a peer and an origin.
    """

    path: str = "/"
    query: dict[str, list[str]] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    peer: str = "tcp4:127.0.0.1:1"
    origin: str | None = None


@implementer(IConnection, IRoomMember)
class FakeConnection:
    """
    A connection on C{path} (query parameters as keywords) that records
    texts, binaries and room deliveries in L{sent}, and its close in
    L{closed}.
    """

    def __init__(self, path: str = "/", subprotocol: str = "chat", identity: Any = None,
                 **query: str) -> None:
        self.id = f"f{next(_ids)}"
        self.subprotocol = subprotocol
        self.request = FakeRequest(path=path, query={k: [v] for k, v in query.items()})
        self.identity = identity
        self.sent: list[Any] = []
        self.closed: tuple[int, str] | None = None
        self.refreshes: list[str] = []
        #: What L{refresh} answers: an identity, or an exception to fail with.
        self.refreshResult: Any = None

    def refresh(self, token: str) -> Deferred:
        self.refreshes.append(token)
        if isinstance(self.refreshResult, Exception):
            return fail(self.refreshResult)
        self.identity = self.refreshResult or self.identity
        return succeed(self.identity)

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
        """
        Every text sent so far, decoded as JSON.
        """
        return [json.loads(m) for m in self.sent if isinstance(m, str)]


@implementer(IHandlerContext)
class FakeContext:
    """
    A context with a L{Clock}, a real in-memory L{RoomHub} whose members get
    C{(payload, isBinary)}, and default settings.  Presence events come
    once C{clock} has advanced by C{settings.presenceInterval}.
    """

    def __init__(self, settings: HandlerSettings | None = None, rooms: RoomHub | None = None,
                 clock: Clock | None = None) -> None:
        self.clock = clock or Clock()
        self.settings = settings or HandlerSettings()
        settings = self.settings
        self.rooms = rooms or RoomHub(
            self.clock, lambda payload, isBinary: (payload, isBinary),
            historySize=settings.historySize, pageSize=settings.presenceList,
            presenceInterval=settings.presenceInterval,
            crowdLimit=settings.presenceLimit or 2**62, logSize=settings.recoverySize,
            ttl=settings.historyTTL)
        self.log = Logger()

    def callLater(self, delay, f, *a, **kw):
        return self.clock.callLater(delay, f, *a, **kw)
