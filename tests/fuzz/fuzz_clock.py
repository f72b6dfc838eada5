"""
Fuzz target: L{ClockHandler} fed any sequence of text and binary messages
and clock advances, in memory (a L{FakeConnection}, a L{Clock}).

The property: no exception escapes C{onMessage} (the service would close
the client with 4000), the client is never closed, every frame is JSON:
a tick with its C{time} and an C{interval} in range, or an error with a
C{message}; and while it is open exactly one tick is scheduled (none after
it closes), so no message can stop the ticks or make them multiply.

Input: records (L{harness.record}); see L{OPS}.

    PYTHONPATH=. python tests/fuzz/fuzz_clock.py CORPUS SEEDS -max_total_time=60
"""

from __future__ import annotations

import json
import math

from tests.fuzz import harness

with harness.instrumented():
    from wsservice.config import HandlerSettings
    from wsservice.handlers.clock import MAX_INTERVAL, MIN_INTERVAL, ClockHandler
    from wsservice.testing import FakeConnection, FakeContext

#: What a record does, by op % 5.
TEXT, BINARY, NESTED, ADVANCE, REOPEN = range(5)
OPS = {
    TEXT: "the client sends the payload as a text message",
    BINARY: "the client sends the payload as a binary message",
    NESTED: 'the client sends {"interval": ...} nested payload[0:2] % 5001 deep around '
            "the rest of the payload",
    ADVANCE: "the clock advances by payload[0:2] centiseconds, at most a minute",
    REOPEN: "the client closes and a new one opens",
}
MAX_DEPTH = 5_000


def nested(payload: bytes) -> bytes:
    """
    The NESTED op's message.
    """
    depth = int.from_bytes(payload[:2], "big") % (MAX_DEPTH + 1)
    return b'{"interval":' * depth + harness.text(payload[2:]) + b"}" * depth


class Client:
    """
    One clock connection, and how much of what it was sent is checked.
    """

    def __init__(self, context: FakeContext) -> None:
        self.connection = FakeConnection("/", "clock")
        self.connection.id = "client"
        self.handler = ClockHandler(self.connection, context)
        self.checked = 0
        self.handler.onOpen()

    def check(self) -> None:
        assert self.connection.closed is None, f"closed: {self.connection.closed}"
        for frame in self.connection.sent[self.checked:]:
            assert isinstance(frame, str), f"a binary frame: {frame!r}"
            event = json.loads(frame)
            assert isinstance(event, dict), frame
            if event.get("type") == "tick":
                assert isinstance(event["time"], str), frame
                interval = event["interval"]
                assert math.isfinite(interval), frame
                assert MIN_INTERVAL <= interval <= MAX_INTERVAL, frame
            else:
                assert event.get("type") == "error", frame
                assert isinstance(event["message"], str), frame
        self.checked = len(self.connection.sent)


def scheduled(context: FakeContext) -> int:
    """
    How many calls are waiting on the clock: the next tick, and nothing else.
    """
    return len(context.clock.getDelayedCalls())


def testOneInput(data: bytes) -> None:
    context = FakeContext(HandlerSettings(clockInterval=1.0))
    client = Client(context)
    for op, payload in harness.records(data):
        op %= 5
        if op == TEXT:
            client.handler.onMessage(harness.text(payload), False)
        elif op == BINARY:
            client.handler.onMessage(payload, True)
        elif op == NESTED:
            client.handler.onMessage(nested(payload), False)
        elif op == ADVANCE:
            # At most a minute: 600 ticks at the shortest interval.
            context.clock.advance(min(int.from_bytes(payload[:2], "big") / 100, 60.0))
        elif op == REOPEN:
            client.handler.onClose(True, 1000, "")
            assert scheduled(context) == 0, "a tick is still scheduled after the close"
            client = Client(context)
        client.check()
        assert scheduled(context) == 1, f"{scheduled(context)} ticks scheduled"


def describe(data: bytes) -> str:
    lines = []
    for op, payload in harness.records(data):
        shown = nested(payload) if op % 5 == NESTED else payload
        if len(shown) > 300:
            shown = shown[:150] + b"..." + shown[-150:]
        lines.append(f"op {op % 5} ({OPS[op % 5]}): {shown!r}")
    return "\n".join(lines) or "(empty input)"


if __name__ == "__main__":
    harness.main(testOneInput, describe)
