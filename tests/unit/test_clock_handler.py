"""
Unit tests of L{ClockHandler} on a L{Clock}: no real time passes.
"""

import json

from wsservice.testing import FakeConnection, FakeContext
from wsservice.config import HandlerSettings
from wsservice.handlers.clock import ClockHandler


def test_ticks_now_and_every_interval_until_closed():
    """
    The first tick is sent on open, then one per interval, and none after
    close.
    """
    context = FakeContext(HandlerSettings(clockInterval=2.0))
    context.clock.advance(1_700_000_000)
    conn = FakeConnection(subprotocol="clock")
    handler = ClockHandler(conn, context)
    handler.onOpen()
    assert len(conn.sent) == 1
    assert conn.events()[0]["time"] == "2023-11-14T22:13:20.000Z"
    context.clock.advance(2.0)
    context.clock.advance(2.0)
    assert len(conn.sent) == 3
    handler.onClose(True, 1000, None)
    context.clock.advance(10)
    assert len(conn.sent) == 3
    assert context.clock.getDelayedCalls() == []


def test_interval_change_ticks_at_once_and_reschedules():
    """
    A new interval is acknowledged by an immediate tick and used from then on.
    """
    context = FakeContext()
    conn = FakeConnection(subprotocol="clock")
    handler = ClockHandler(conn, context)
    handler.onOpen()
    handler.onMessage(json.dumps({"interval": 0.5}).encode(), False)
    assert conn.events()[-1]["interval"] == 0.5
    context.clock.advance(0.5)
    assert len(conn.sent) == 3
    assert len(context.clock.getDelayedCalls()) == 1
