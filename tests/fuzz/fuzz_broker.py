"""
Fuzz target: the messages on a room's Redis channel, decoded
(L{decodeChannelMessage}) and dispatched by the hub into its view of the
room (L{NodeRoom}), with members joining, getting their snapshots and
leaving in between; no Redis, no network.

Two rooms, two properties:

  - C{raw}: any bytes, as a broken or hostile publisher could put on the
    channel.  Decoding raises nothing but C{ValueError}; what decodes is
    dispatched without an exception, and a member is given only bodies
    (or binary data) the message held, never more of them.
  - C{sane}: messages as the publish script and nodes write them, seqs
    consecutive, arriving in publish order but at any moment relative to
    joins and snapshots.  Every member gets every event after its
    snapshot's seq and every binary message from its join on, exactly
    once and in order (a node's own replayed events excepted), and nothing
    once it left; the history stays within its bounds.

Input: records (L{harness.record}); see L{OPS}.

    PYTHONPATH=. python tests/fuzz/fuzz_broker.py CORPUS SEEDS -max_total_time=60
"""

from __future__ import annotations

from collections import deque
from typing import Any

from tests.fuzz import harness

with harness.instrumented():
    from twisted.internet.defer import Deferred
    from twisted.internet.task import Clock

    from wsservice.rooms.events import History, RoomSnapshot, encodeEvent, withSeq
    from wsservice.rooms.redis.hub import RedisRoomHub
    from wsservice.rooms.redis.view import NodeRoom
    from wsservice.rooms.redis.wire import (
        BinaryMessage,
        BrokerAddress,
        EventBatch,
        decodeChannelMessage,
        encodeBinaryMessage,
    )

NODE = "n0"
TIME = "2026-11-23T18:44:48.123Z"
HISTORY_SIZE, HISTORY_BYTES = 4, 600

#: What a record does, by op % 7.
RAW, PUBLISH, PUBLISH_BINARY, DELIVER, JOIN, ACTIVATE, LEAVE = range(7)
OPS = {
    RAW: "the payload arrives on the raw room's channel as it is",
    PUBLISH: "1 + payload[0] % 4 events are published to the sane room (payload[1] "
             "bits: flags, origin ours, replayed; the rest is the message text)",
    PUBLISH_BINARY: "the payload is published to the sane room as binary "
                    "(payload[0] bits: origin ours, replayed)",
    DELIVER: "the next 1 + payload[0] % 4 published messages arrive (all if empty)",
    JOIN: "a member joins both rooms; its snapshot is pending",
    ACTIVATE: "the oldest pending member gets its snapshot, with a seq between the "
              "room's seq at its join and now (payload[0] picks)",
    LEAVE: "member payload[0] % members leaves both rooms",
}


class Member:
    """
    A local member that keeps what it is given, and what the model says
    it should have.
    """

    def __init__(self, name: str, publishedAtJoin: int) -> None:
        self.name = name
        self.publishedAtJoin = publishedAtJoin
        self.got: list[tuple[bytes, bool]] = []
        self.bystander = Bystander(self)  # the same member in the raw room
        self.seen: list[tuple[int | None, bytes, bool]] = []  # sane items while a member
        self.snapshot: int | None = None
        self.present = True

    def deliver(self, message: tuple[bytes, bool]) -> None:
        assert self.present, f"{self.name} got {message!r} after it left"
        self.got.append(message)

    def expected(self) -> list[tuple[bytes, bool]]:
        if self.snapshot is None:
            return []
        return [(payload, isBinary) for seq, payload, isBinary in self.seen
                if seq is None or seq > self.snapshot]


class Bystander:
    """
    A member's connection to the raw room: it keeps what it is given.
    """

    def __init__(self, member: Member) -> None:
        self.member = member
        self.got: list[tuple[bytes, bool]] = []

    def deliver(self, message: tuple[bytes, bool]) -> None:
        assert self.member.present, f"{self.member.name} got {message!r} after it left"
        self.got.append(message)


class Fixture:
    """
    A hub that is never connected, holding the two rooms' views, their
    members, and the sane room's messages on their way from Redis.
    """

    def __init__(self) -> None:
        self.clock = Clock()
        self.hub = RedisRoomHub(self.clock, lambda payload, isBinary: (payload, isBinary),
                                lambda address: None, BrokerAddress(),
                                historySize=HISTORY_SIZE, historyBytes=HISTORY_BYTES)
        self.hub.node = NODE  # the same on every run
        self.keys = self.hub._keys
        self.rooms = {}
        for name in ("raw", "sane"):
            state = NodeRoom(self.hub._prepare, History(HISTORY_SIZE, HISTORY_BYTES),
                             lambda size, count: None)
            state.subscribed = True
            self.hub._rooms[name] = self.rooms[name] = state
        self.members: list[Member] = []
        self.pending: deque[Member] = deque()
        self.inFlight: deque[tuple[bytes, list[tuple[int | None, bytes, bool]]]] = deque()
        self.published = 0
        self.fields = 0

    def _both(self, member: Member) -> list[tuple[NodeRoom, Any]]:
        return [(self.rooms["sane"], member), (self.rooms["raw"], member.bystander)]

    def channel(self, room: str) -> bytes:
        return self.keys.channel(room).encode("utf-8")

    def join(self) -> None:
        self.fields += 1
        member = Member(f"m{self.fields}", self.published)
        for state, who in self._both(member):
            state.add(who, {"id": member.name}, f"{NODE}/{self.fields}")
        self.members.append(member)
        self.pending.append(member)

    def activate(self, pick: int) -> None:
        if not self.pending:
            return
        member = self.pending.popleft()
        seq = member.publishedAtJoin + pick % (self.published - member.publishedAtJoin + 1)
        member.snapshot = seq
        for state, who in self._both(member):
            state.activate(who, RoomSnapshot([], None, 0, 0, seq=seq), Deferred())

    def leave(self, pick: int) -> None:
        present = [m for m in self.members if m.present]
        if not present:
            return
        member = present[pick % len(present)]
        for state, who in self._both(member):
            assert state.remove(who) is not None
        member.present = False
        if member in self.pending:
            self.pending.remove(member)

    def publish(self, payload: bytes) -> None:
        count = 1 + (payload[0] % 4 if payload else 0)
        bits = payload[1] if len(payload) > 1 else 0
        origin = NODE if bits & 0x10 else "n1"
        replayed = bool(bits & 0x20)
        own = replayed and origin == NODE
        text = harness.text(payload[2:]).decode("utf-8")
        first, bodies, flags, items = self.published + 1, [], "", []
        for i in range(count):
            seq = first + i
            body = withSeq(encodeEvent({"type": "message", "name": "x", "message": text,
                                        "id": f"c{i}"}, "sane", TIME), seq)
            bodies.append(body)
            flags += str((bits >> (i % 4)) & 1 | 2 * ((bits >> 6) & 1))
            if not own:
                items.append((seq, body, False))
        self.published += count
        message = b"e %d %s %s %d\n" % (first, flags.encode(), origin.encode(), replayed)
        self.inFlight.append((message + b"\n".join(bodies), items))

    def publishBinary(self, payload: bytes) -> None:
        bits = payload[0] if payload else 0
        origin = NODE if bits & 1 else "n1"
        replayed = bool(bits & 2)
        message = encodeBinaryMessage(origin, replayed, payload)
        own = replayed and origin == NODE
        self.inFlight.append((message, [] if own else [(None, payload, True)]))

    def deliver(self, count: int) -> None:
        for _ in range(min(count, len(self.inFlight))):
            message, items = self.inFlight.popleft()
            for member in self.members:
                if member.present:
                    member.seen.extend(items)
            self.hub._dispatch(self.channel("sane"), message)

    def raw(self, message: bytes) -> None:
        try:
            decoded = decodeChannelMessage(message)
        except ValueError:
            return
        if isinstance(decoded, EventBatch):
            allowed = [(body, False) for _, _, body in decoded.events()]
        else:
            assert isinstance(decoded, BinaryMessage), decoded
            allowed = [(decoded.data, True)]
        before = {m: len(m.bystander.got) for m in self.members}
        self.hub._dispatch(self.channel("raw"), message)
        for member in self.members:
            new = member.bystander.got[before[member]:]
            assert len(new) <= len(allowed), f"{len(new)} deliveries of {len(allowed)} items"
            for item in new:
                assert item in allowed, f"{member.name} got {item!r}, not in the message"

    def check(self) -> None:
        for name, state in self.rooms.items():
            history = state.history
            assert len(history) <= HISTORY_SIZE, f"{name}: {len(history)} history entries"
            assert sum(len(f) for f in history.frames()) <= HISTORY_BYTES, name

    def checkSane(self) -> None:
        for member in self.members:
            assert member.got == member.expected(), (
                f"{member.name} (joined at seq {member.publishedAtJoin}, snapshot "
                f"{member.snapshot}) got {member.got!r}, expected {member.expected()!r}")


def testOneInput(data: bytes) -> None:
    fixture = Fixture()
    fixture.join()
    fixture.activate(0)
    for op, payload in harness.records(data):
        op %= 7
        if op == RAW:
            fixture.raw(payload)
        elif op == PUBLISH:
            fixture.publish(payload)
        elif op == PUBLISH_BINARY:
            fixture.publishBinary(payload)
        elif op == DELIVER:
            fixture.deliver(1 + payload[0] % 4 if payload else len(fixture.inFlight))
        elif op == JOIN:
            fixture.join()
        elif op == ACTIVATE:
            fixture.activate(payload[0] if payload else 0)
        elif op == LEAVE:
            fixture.leave(payload[0] if payload else 0)
        fixture.check()
    fixture.deliver(len(fixture.inFlight))
    fixture.checkSane()


def describe(data: bytes) -> str:
    lines = []
    for op, payload in harness.records(data):
        shown = payload if len(payload) <= 300 else payload[:150] + b"..." + payload[-150:]
        lines.append(f"op {op % 7} ({OPS[op % 7]}): {shown!r}")
    return "\n".join(lines) or "(empty input)"


if __name__ == "__main__":
    harness.main(testOneInput, describe)
