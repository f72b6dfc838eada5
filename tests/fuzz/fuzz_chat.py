"""
Fuzz target: L{ChatHandler} fed any sequence of text and binary messages,
in memory (L{FakeConnection}s, a real in-memory room hub, a L{Clock}).

The property, from the issue "Bad input never costs anyone else": no
exception escapes C{onMessage} (the service would close the sender with
4000 "internal error"), nobody is closed, every text frame anyone gets is
UTF-8 JSON with C{type}, C{name} and C{message}, binary messages reach the
bystander unchanged, and the C{seq}s each member sees run on from its
welcome without a gap (a seq is consumed only by an event delivered).

Input: records (L{harness.record}) whose op byte, modulo the number of
L{OPS}, says what happens next.  The first byte picks the settings.

    PYTHONPATH=. python tests/fuzz/fuzz_chat.py CORPUS SEEDS -max_total_time=60
"""

from __future__ import annotations

import json
import sys

from tests.fuzz import harness

with harness.instrumented():
    from wsservice.config import HandlerSettings
    from wsservice.handlers.chat import ChatHandler
    from wsservice.testing import FakeConnection, FakeContext

ROOM = "/kitchen"

#: What a record does, by op % len(OPS).
TEXT, BINARY, NESTED, TICK, REJOIN, BYSTANDER, CLOSE_BYSTANDER, ESCAPED, MEMBERS = range(9)
OPS = {
    TEXT: "alice sends the payload as a text message",
    BINARY: "alice sends the payload as a binary message",
    NESTED: "alice sends JSON nested depth times: payload[0] picks the wrapper, "
            "payload[1:3] % 5001 the depth, the rest is the innermost text",
    TICK: "the clock advances by payload[0] * 10 ms (the presence interval if empty)",
    REJOIN: "alice closes and comes back with ?name= the payload",
    BYSTANDER: "bob, the bystander, sends the payload as text",
    CLOSE_BYSTANDER: "bob leaves and a new bystander joins",
    ESCAPED: "alice sends one string field spelled as \\uXXXX escapes of the payload's "
             "UTF-16 code units (any code point, lone surrogates too): payload[0] picks "
             "the field",
    MEMBERS: "alice asks for the members page after the cursor that is the payload read as "
             "a signed big-endian number, in decimal (empty: no cursor)",
}

#: (opening, closing) of one nesting level, by payload[0] % len.
WRAPPERS = [
    (b"[", b"]"),
    (b'{"message":', b"}"),
    (b'{"name":', b"}"),
    (b'{"type":"members","after":', b"}"),
    (b'{"x":[', b"]}"),
]
MAX_DEPTH = 5_000

#: The ESCAPED op's message around its string, by payload[0] % len.
FIELDS = [
    b'{"message":"%s"}',
    b'{"name":"%s"}',
    b'{"type":"members","after":"%s"}',
    b'{"type":"%s"}',
    b'{"type":"rename","name":"%s","message":"%s"}',
]

SETTINGS = [
    HandlerSettings(),
    HandlerSettings(historySize=3, presenceList=1, presenceLimit=1),
    HandlerSettings(historySize=0, maxNameLength=4, presenceList=2, presenceInterval=0.0),
]


def nested(payload: bytes) -> bytes:
    """
    The NESTED op's message: the innermost text wrapped depth times.
    """
    opening, closing = WRAPPERS[payload[0] % len(WRAPPERS)] if payload else WRAPPERS[0]
    depth = int.from_bytes(payload[1:3], "big") % (MAX_DEPTH + 1)
    return opening * depth + harness.text(payload[3:]) + closing * depth


def escaped(payload: bytes) -> bytes:
    """
    The ESCAPED op's message: its string is the payload's code units as
    JSON escapes.
    """
    field = FIELDS[payload[0] % len(FIELDS)] if payload else FIELDS[0]
    units = payload[1:]
    string = b"".join(b"\\u%04x" % int.from_bytes(units[i:i + 2], "big")
                      for i in range(0, len(units) - 1, 2))
    return field.replace(b"%s", string)


def membersRequest(payload: bytes) -> bytes:
    """
    The MEMBERS op's request.
    """
    if not payload:
        return b'{"type":"members"}'
    return b'{"type":"members","after":"%d"}' % int.from_bytes(payload, "big", signed=True)


class Member:
    """
    One connection and its handler, and what has been checked of what it
    was sent.
    """

    def __init__(self, context: FakeContext, name: str, query: bytes | None = None) -> None:
        kw = {} if query is None else {"name": query.decode("utf-8", "replace")}
        self.connection = FakeConnection(ROOM, **kw)
        self.connection.id = name  # the same ids on every run
        self.handler = ChatHandler(self.connection, context)
        self.checked = 0
        self.seq: int | None = None
        self.binaries: list[bytes] = []
        self.open = False

    def start(self) -> None:
        self.handler.onOpen()
        self.open = True

    def close(self) -> None:
        self.handler.onClose(True, 1000, "")
        self.open = False

    def check(self) -> None:
        """
        Every frame sent since the last check is well formed, and seqs run
        on without a gap.
        """
        connection = self.connection
        assert connection.closed is None, f"{connection.id} was closed: {connection.closed}"
        for frame in connection.sent[self.checked:]:
            if isinstance(frame, bytes):
                self.binaries.append(frame)
                continue
            frame.encode("utf-8")  # a str that is not UTF-8 cannot be sent
            event = json.loads(frame)
            assert isinstance(event, dict), frame
            missing = {"type", "name", "message"} - set(event)
            assert not missing, f"{connection.id} got a frame without {missing}: {frame}"
            if event["type"] == "welcome":
                assert self.seq is None, f"a second welcome: {frame}"
                self.seq = event["seq"]
            elif "seq" in event:
                assert self.seq is not None, f"an event before the welcome: {frame}"
                assert event["seq"] == self.seq + 1, (
                    f"{connection.id} expected seq {self.seq + 1}, got {frame}")
                self.seq = event["seq"]
            if event["type"] == "history":
                assert event["messages"], frame
                for entry in event["messages"]:
                    assert entry["seq"] <= self.seq, frame
        self.checked = len(connection.sent)


def testOneInput(data: bytes) -> None:
    settings = SETTINGS[data[0] % len(SETTINGS)] if data else SETTINGS[0]
    context = FakeContext(settings)
    alice = Member(context, "alice", b"alice")
    bob = Member(context, "bob", b"bob")
    alice.start()
    bob.start()
    members = [alice, bob]
    binaries: list[bytes] = []
    incarnation = 0
    for op, payload in harness.records(data[1:]):
        op %= len(OPS)
        if op == TEXT:
            alice.handler.onMessage(harness.text(payload), False)
        elif op == BINARY:
            alice.handler.onMessage(payload, True)
            binaries.append(payload)
        elif op == NESTED:
            alice.handler.onMessage(nested(payload), False)
        elif op == TICK:
            context.clock.advance(payload[0] / 100 if payload else settings.presenceInterval)
        elif op == REJOIN:
            alice.close()
            incarnation += 1
            alice = Member(context, f"alice{incarnation}", payload)
            alice.start()
            members.append(alice)
        elif op == BYSTANDER:
            bob.handler.onMessage(harness.text(payload), False)
        elif op == CLOSE_BYSTANDER:
            # The binaries so far went to the old bystander: check them now.
            bob.check()
            assert bob.binaries == binaries, (bob.binaries, binaries)
            bob.close()
            incarnation += 1
            bob, binaries = Member(context, f"bob{incarnation}", b"bob"), []
            bob.start()
            members.append(bob)
        elif op == ESCAPED:
            alice.handler.onMessage(escaped(payload), False)
        elif op == MEMBERS:
            alice.handler.onMessage(membersRequest(payload), False)
        for member in members:
            member.check()
    context.clock.advance(max(settings.presenceInterval, 0.01))
    for member in members:
        member.check()
    assert bob.binaries == binaries, (bob.binaries, binaries)


def describe(data: bytes) -> str:
    """
    What an input does, one line per record, for crash reports.
    """
    if not data:
        return "(empty input)"
    lines = [f"settings {data[0] % len(SETTINGS)}: {SETTINGS[data[0] % len(SETTINGS)]}"]
    for op, payload in harness.records(data[1:]):
        op %= len(OPS)
        shown = {NESTED: nested, ESCAPED: escaped, MEMBERS: membersRequest}.get(op, lambda p: p)(payload)
        if len(shown) > 300:
            shown = shown[:150] + b"..." + shown[-150:]
        lines.append(f"op {op} ({OPS[op]}): {shown!r}")
    return "\n".join(lines)


if __name__ == "__main__":
    harness.main(testOneInput, describe)
