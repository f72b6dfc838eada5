"""
The soak's load: chat members, echo and clock clients on Autobahn, each
checking everything it receives, and the churn that closes their
connections (cleanly or by dropping TCP) and opens them again.

A client here is a user that outlives its connections: a chat member keeps
its room's C{seq} and C{epoch} across them and comes back with C{?since=},
so the whole stream it sees, over every reconnect, must count up by one.
Everything runs on the reactor given to L{Load}; what goes wrong is counted
in one L{Tally} by kind.
"""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from typing import Any, Callable

from autobahn.twisted.websocket import WebSocketClientFactory, WebSocketClientProtocol
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint

#: Chat members send quickly until their room has had this many events, so
#: that every room's history and recovery log (1,000 events by default) are
#: full before memory is measured: bounded growth that would otherwise look
#: like a leak.
PRIME_EVENTS = 1100
#: Seconds between a member's priming messages: 33/s, under chat's 100/s.
PRIME_INTERVAL = 0.03
#: A clock connection whose last tick is older than this is stalled.
CLOCK_STALL = 10.0
#: The errors kept word for word, per kind, for the report.
DETAILS_PER_KIND = 3


class Tally:
    """
    What the load saw: errors by kind (with the first few in words),
    event counts, and latency samples in seconds by kind.
    """

    def __init__(self) -> None:
        self.errors: Counter[str] = Counter()
        self.details: dict[str, list[str]] = {}
        self.counts: Counter[str] = Counter()
        self.latency: dict[str, list[float]] = {"chat delivery": [], "echo round trip": []}

    def error(self, kind: str, detail: str) -> None:
        self.errors[kind] += 1
        kept = self.details.setdefault(kind, [])
        if len(kept) < DETAILS_PER_KIND:
            kept.append(detail)


class _Connection(WebSocketClientProtocol):
    """
    One WebSocket of a L{Client}, which it tells everything.
    """

    def onOpen(self) -> None:
        self.factory.client.opened(self)

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        self.factory.client.received(payload, isBinary)

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        self.factory.client.closed(self, wasClean, code, reason)


class Client:
    """
    A user of one subprotocol that keeps a connection open while the load
    runs; a churning one closes it after a few seconds, cleanly or by
    dropping TCP in turn, and connects again at once.  Subclasses say what
    to do with the connection.
    """

    subprotocol = ""

    def __init__(self, load: "Load", name: str) -> None:
        self.load = load
        self.name = name
        #: Set by L{Load} for its share of churning clients.
        self.churns = False
        self.connection: _Connection | None = None
        #: How the current connection is being closed: "clean", "drop" or None.
        self.leaving: str | None = None
        self.wantsToLeave = False
        self.drops = random.random() < 0.5
        self.timers: list[Any] = []
        self.connections = 0

    @property
    def tally(self) -> Tally:
        return self.load.tally

    def path(self) -> str:
        return "/"

    def connect(self) -> None:
        factory = WebSocketClientFactory(f"ws://127.0.0.1:{self.load.port}{self.path()}",
                                         protocols=[self.subprotocol])
        factory.setProtocolOptions(openHandshakeTimeout=10, closeHandshakeTimeout=5,
                                   maxMessagePayloadSize=0, maxFramePayloadSize=0)
        factory.protocol = _Connection
        factory.client = self
        self.leaving, self.wantsToLeave = None, False
        endpoint = TCP4ClientEndpoint(self.load.reactor, "127.0.0.1", self.load.port, timeout=10)
        endpoint.connect(factory).addErrback(self._notConnected)

    def _notConnected(self, failure: Any) -> None:
        self.tally.error("failed connects", f"{self.name}: {failure.getErrorMessage()}")
        self._again()

    def later(self, delay: float, call: Callable[[], None]) -> None:
        self.timers = [t for t in self.timers if t.active()]
        self.timers.append(self.load.reactor.callLater(delay, call))

    def cancelTimers(self) -> None:
        for timer in self.timers:
            if timer.active():
                timer.cancel()
        self.timers = []

    def opened(self, connection: _Connection) -> None:
        self.connection = connection
        self.connections += 1
        self.tally.counts["connections opened"] += 1
        if self.connections > 1:
            self.tally.counts["reconnects"] += 1
        if self.load.stopping:
            self.leave()
        elif self.churns:
            self.later(random.uniform(*self.load.lifetime), self.leave)

    def busy(self) -> bool:
        """
        Whether an answer is awaited: a client leaves only between
        exchanges, so that nothing it sent can be lost by its own doing.
        """
        return False

    def leave(self) -> None:
        """
        Close the connection now, or as soon as the exchange in flight is
        answered.
        """
        if self.connection is None or self.leaving:
            return
        if self.busy():
            self.wantsToLeave = True
            return
        self.cancelTimers()
        if self.drops and self.load.running:
            self.leaving = "drop"
            self.connection.transport.abortConnection()
        else:
            self.leaving = "clean"
            self.connection.sendClose(1000)
        self.drops = not self.drops

    def idle(self) -> None:
        """
        Called when an exchange is answered: leave if that was awaited.
        """
        if self.wantsToLeave or (self.load.stopping and not self.busy()):
            self.leave()

    def received(self, payload: bytes, isBinary: bool) -> None:
        raise NotImplementedError

    def closed(self, connection: _Connection, wasClean: bool, code: int | None,
               reason: str | None) -> None:
        self.cancelTimers()
        if self.connection is None:
            self.tally.error("failed connects", f"{self.name}: handshake failed ({code} {reason})")
        elif self.leaving == "clean" and not (wasClean and code == 1000):
            self.tally.error("unclean closes", f"{self.name}: {code} {reason} clean={wasClean}")
        elif self.leaving is None:
            self.tally.error(f"unexpected close {code}", f"{self.name}: {reason}")
        elif self.busy():
            self.tally.error("unanswered at close", f"{self.name}: {self.pending()}")
        if self.leaving:
            self.tally.counts[f"{self.leaving} closes"] += 1
        self.connection = None
        self.leaving = None
        self._again()

    def pending(self) -> str:
        return ""

    def _again(self) -> None:
        if self.load.running:
            self.connect()
        else:
            self.load.done(self)

    def watch(self, now: float) -> None:
        """
        Called at every sample: report what should have happened by now.
        """


class ChatMember(Client):
    """
    A member of one room who sends C{{"name", "message"}} at a modest
    rate, one message in flight, and checks that every event it gets
    continues the room's C{seq} by one, over every reconnect.
    """

    subprotocol = "chat"

    def __init__(self, load: "Load", name: str, room: str) -> None:
        super().__init__(load, name)
        self.room = room
        self.epoch: str | None = None
        self.seq = 0
        self.myId: str | None = None
        self.sent = 0
        self.inFlight: str | None = None
        self.replaying = 0
        self.resuming = False

    def path(self) -> str:
        query = f"?name={self.name}"
        if self.epoch is not None:
            query += f"&since={self.seq}&epoch={self.epoch}"
        return f"/{self.room}{query}"

    def opened(self, connection: _Connection) -> None:
        self.myId = None
        self.resuming = self.epoch is not None
        super().opened(connection)

    def busy(self) -> bool:
        return self.inFlight is not None

    def pending(self) -> str:
        return f"own message {self.inFlight!r} never came back"

    def received(self, payload: bytes, isBinary: bool) -> None:
        if isBinary:
            self.tally.error("chat unexpected binary", self.name)
            return
        event = json.loads(payload)
        kind = event.get("type")
        if kind == "welcome":
            self._welcome(event)
        elif kind == "resumed":
            self._resumed(event)
        elif kind == "error":
            self.tally.error("chat error events", f"{self.name}: {event.get('message')}")
        elif "seq" in event:
            self._event(event)

    def _welcome(self, event: dict[str, Any]) -> None:
        if self.resuming:
            self.tally.error("chat welcome instead of resumed", self.name)
        self.resuming = False
        self.epoch, self.seq, self.myId = event["epoch"], event["seq"], event["id"]
        self._ready()

    def _resumed(self, event: dict[str, Any]) -> None:
        self.resuming = False
        if not event.get("recovered"):
            self.tally.error("chat not recovered", f"{self.name} since {self.seq}")
            self.epoch = None
            self.resuming = False
            return
        self.tally.counts["chat recovered"] += 1
        if event["epoch"] != self.epoch or event["seq"] != self.seq + event["missed"]:
            self.tally.error("chat resume mismatch", f"{self.name}: since {self.seq} epoch "
                             f"{self.epoch}, got {event['seq']}-{event['missed']} {event['epoch']}")
        self.myId = event["id"]
        self.replaying = event["missed"]
        self._ready()

    def _ready(self) -> None:
        self._next()

    def _event(self, event: dict[str, Any]) -> None:
        seq = event["seq"]
        if event.get("epoch") != self.epoch:
            self.tally.error("chat epoch changed", f"{self.name}: {self.epoch} -> {event.get('epoch')}")
        elif seq <= self.seq:
            self.tally.error("chat seq duplicates", f"{self.name}: {seq} after {self.seq}")
        elif seq > self.seq + 1:
            self.tally.error("chat seq gaps", f"{self.name}: {seq} after {self.seq}")
        self.seq = max(seq, self.seq)
        replayed = self.replaying > 0
        self.replaying -= replayed
        if event["type"] == "message":
            self._message(event, replayed)

    def _message(self, event: dict[str, Any], replayed: bool) -> None:
        self.tally.counts["chat deliveries"] += 1
        text = event.get("message", "")
        parts = text.split(" ")
        if len(parts) != 3 or parts[0] != event.get("name"):
            self.tally.error("chat content", f"{self.name}: {event!r}")
            return
        if not replayed:
            self.tally.latency["chat delivery"].append(time.monotonic() - float(parts[2]))
        if event.get("id") == self.myId and text == self.inFlight:
            self.inFlight = None
            self._next()
            self.idle()

    def send(self) -> None:
        if self.connection is None or self.leaving or self.inFlight or not self.load.sending:
            return
        self.sent += 1
        self.inFlight = f"{self.name} {self.sent} {time.monotonic():.6f}"
        self.tally.counts["chat messages"] += 1
        self.connection.sendMessage(
            json.dumps({"name": self.name, "message": self.inFlight}).encode())

    def _next(self) -> None:
        priming = self.seq < PRIME_EVENTS
        self.later(PRIME_INTERVAL if priming else random.uniform(*self.load.chatInterval), self.send)


class EchoClient(Client):
    """
    Round trips of text and binary frames in turn, of random sizes, one in
    flight; what comes back must be the same frame.
    """

    subprotocol = "echo"

    def __init__(self, load: "Load", name: str) -> None:
        super().__init__(load, name)
        self.expected: tuple[bytes, bool, float] | None = None
        self.binary = False

    def opened(self, connection: _Connection) -> None:
        super().opened(connection)
        self.send()

    def busy(self) -> bool:
        return self.expected is not None

    def pending(self) -> str:
        return "echo reply never came"

    def send(self) -> None:
        if self.connection is None or self.leaving or self.expected or not self.load.sending:
            return
        size = random.randint(1, 4096)
        self.binary = not self.binary
        if self.binary:
            payload = random.randbytes(size)
        else:
            payload = "".join(random.choices("abcdefghijklmnopqrstuvwxyzé€ ", k=size)).encode()
        self.expected = (payload, self.binary, time.monotonic())
        self.connection.sendMessage(payload, isBinary=self.binary)

    def received(self, payload: bytes, isBinary: bool) -> None:
        if self.expected is None:
            self.tally.error("echo unasked", f"{self.name}: {len(payload)} bytes")
            return
        want, binary, since = self.expected
        self.expected = None
        if payload != want or isBinary != binary:
            self.tally.error("echo mismatches", f"{self.name}: {len(payload)} of {len(want)} "
                             f"bytes, binary {isBinary} of {binary}")
        self.tally.counts["echo round trips"] += 1
        self.tally.latency["echo round trip"].append(time.monotonic() - since)
        self.later(self.load.echoInterval, self.send)
        self.idle()


class ClockClient(Client):
    """
    Ticks: one at once on open, then every interval; half the clients ask
    for 0.5 s and expect the acknowledging tick to say so.
    """

    subprotocol = "clock"

    def __init__(self, load: "Load", name: str, interval: float | None) -> None:
        super().__init__(load, name)
        self.interval = interval
        self.lastTick = 0.0
        self.ticks = 0
        self.stalled = False
        self.acknowledged = False

    def opened(self, connection: _Connection) -> None:
        self.ticks, self.stalled, self.acknowledged = 0, False, False
        self.lastTick = time.monotonic()
        super().opened(connection)

    def received(self, payload: bytes, isBinary: bool) -> None:
        event = json.loads(payload)
        if event.get("type") != "tick" or not isinstance(event.get("time"), str):
            self.tally.error("clock content", f"{self.name}: {event!r}")
            return
        self.ticks += 1
        self.lastTick = time.monotonic()
        self.tally.counts["clock ticks"] += 1
        if self.interval is None:
            return
        self.acknowledged = self.acknowledged or event.get("interval") == self.interval
        if self.ticks == 1 and self.connection is not None:
            self.connection.sendMessage(json.dumps({"interval": self.interval}).encode())
        elif self.ticks == 3 and not self.acknowledged:
            # The third: a regular tick may pass the request on its way.
            self.tally.error("clock interval not acknowledged", f"{self.name}: {event!r}")

    def watch(self, now: float) -> None:
        if (self.connection is not None and not self.leaving and not self.stalled
                and now - self.lastTick > CLOCK_STALL):
            self.stalled = True
            self.tally.error("clock stalls", f"{self.name}: no tick for {now - self.lastTick:.1f} s")


class Load:
    """
    Every client of the soak on one reactor: L{start} connects them all;
    L{stop} lets each finish its exchange in flight, closes it cleanly and
    fires when all are closed.
    """

    def __init__(self, reactor: Any, port: int, rooms: int = 4, members: int = 6,
                 echoes: int = 8, clocks: int = 8,
                 lifetime: tuple[float, float] = (0.5, 2.0),
                 chatInterval: tuple[float, float] = (1.0, 3.0),
                 echoInterval: float = 0.1) -> None:
        self.reactor = reactor
        self.port = port
        self.tally = Tally()
        self.lifetime = lifetime
        self.chatInterval = chatInterval
        self.echoInterval = echoInterval
        self.running = self.sending = False
        self.stopping = False
        self._finished: Deferred[None] | None = None
        self._deadline: Any = None
        self.clients: list[Client] = []
        self._open: set[Client] = set()
        # Half of each kind churns, and of the clocks both intervals do.
        for room in range(rooms):
            for member in range(members):
                self._add(ChatMember(self, f"r{room}m{member}", f"soak-{room}"), member % 2 == 0)
        for n in range(echoes):
            self._add(EchoClient(self, f"echo{n}"), n % 2 == 0)
        for n in range(clocks):
            self._add(ClockClient(self, f"clock{n}", 0.5 if n % 2 else None), n % 4 < 2)

    def _add(self, client: Client, churns: bool) -> None:
        client.churns = churns
        self.clients.append(client)

    def start(self) -> None:
        self.running = self.sending = True
        for client in self.clients:
            self._open.add(client)
            client.connect()

    def watch(self) -> None:
        now = time.monotonic()
        for client in self.clients:
            client.watch(now)

    def stop(self, timeout: float = 20) -> "Deferred[None]":
        """
        Stop churning and sending, close every connection cleanly once its
        exchange in flight is answered, and fire when all are closed; after
        C{timeout} seconds the rest are dropped and counted.
        """
        self.running = self.sending = False
        self.stopping = True
        self._finished = Deferred()
        for client in list(self._open):
            client.cancelTimers()
            if client.connection is None:
                continue  # its connect is under way, and it reports in
            client.idle()
        self._deadline = self.reactor.callLater(timeout, self._giveUp)
        self._check()
        return self._finished

    def _giveUp(self) -> None:
        for client in list(self._open):
            self.tally.error("not closed at the end", f"{client.name}: {client.pending()}")
            if client.connection is not None:
                client.connection.transport.abortConnection()

    def done(self, client: Client) -> None:
        self._open.discard(client)
        self._check()

    def _check(self) -> None:
        if self._finished is not None and not self._open and not self._finished.called:
            if self._deadline is not None and self._deadline.active():
                self._deadline.cancel()
            self._finished.callback(None)

    def churners(self) -> int:
        return sum(client.churns for client in self.clients)
