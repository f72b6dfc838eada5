"""
L{wsservice.websocket.timers.BucketTimer}, the timer every connection's
ping, pong and closing-handshake timeouts go through, on a fake clock: it
fires each call once, never early, shares one reactor timer per bucket,
and a cancel is cheap and final.
"""

from __future__ import annotations

import pytest
from twisted.internet.task import Clock

from wsservice.websocket.timers import BUCKET, BucketTimer


def test_a_call_runs_once_after_its_delay_and_never_early():
    """
    A call runs when its bucket falls due: not before the delay, at most
    one bucket after it, and only once.
    """
    clock, ran = Clock(), []
    timer = BucketTimer(clock)
    timer.call_later(1.0, ran.append, "ping")
    clock.advance(0.99)
    assert ran == []
    clock.advance(BUCKET)
    assert ran == ["ping"]
    clock.advance(10)
    assert ran == ["ping"]


def test_calls_due_together_share_one_reactor_timer():
    """
    Ten thousand connections' timeouts in one bucket are one DelayedCall.
    """
    clock = Clock()
    timer = BucketTimer(clock)
    for _ in range(10_000):
        timer.call_later(5.0, lambda: None)
    assert len(clock.getDelayedCalls()) == 1
    assert timer.pending() == 10_000


def test_cancel_stops_a_call_and_the_last_cancel_frees_the_reactor_timer():
    """
    A cancelled call never runs; when a bucket empties, its reactor timer
    is cancelled too; cancelling twice, or after the call ran, is harmless.
    """
    clock, ran = Clock(), []
    timer = BucketTimer(clock)
    first = timer.call_later(1.0, ran.append, 1)
    second = timer.call_later(1.0, ran.append, 2)
    first.cancel()
    first.cancel()
    clock.advance(2)
    assert ran == [2]
    second.cancel()
    late = timer.call_later(1.0, ran.append, 3)
    late.cancel()
    assert clock.getDelayedCalls() == [] and timer.pending() == 0


def test_a_full_bucket_runs_in_chunks_and_honours_cancels_in_between():
    """
    A bucket larger than a chunk runs over several reactor turns (each
    later chunk scheduled for the next turn); a call cancelled before its
    chunk ran (by an earlier call, say) does not run.
    """
    clock, ran, turns = Clock(), [], []
    schedule = clock.callLater
    clock.callLater = lambda delay, f, *a, **kw: (  # type: ignore[method-assign]
        turns.append(delay) if delay == 0 else None, schedule(delay, f, *a, **kw))[1]
    timer = BucketTimer(clock, chunk=100)
    calls: list = []
    timer.call_later(1.0, lambda: calls[200].cancel())
    calls.extend(timer.call_later(1.0, ran.append, i) for i in range(250))
    timer.call_later(1.0, calls[0].cancel)  # ran already: harmless
    clock.advance(1.0 + BUCKET)
    assert turns == [0, 0]  # 252 calls: three chunks
    assert ran == [i for i in range(250) if i != 200]


def test_a_failing_call_is_logged_and_the_others_still_run():
    """
    One connection's timeout raising does not keep the others' from running.
    """
    from twisted.logger import LogLevel, globalLogPublisher

    seen = []
    observer = lambda event: seen.append(event) if event["log_level"] is LogLevel.critical else None  # noqa: E731
    globalLogPublisher.addObserver(observer)
    try:
        clock, ran = Clock(), []
        timer = BucketTimer(clock)
        timer.call_later(1.0, lambda: 1 / 0)
        timer.call_later(1.0, ran.append, "after")
        clock.advance(2)
    finally:
        globalLogPublisher.removeObserver(observer)
    assert ran == ["after"]
    assert [e["log_format"] for e in seen] == ["a connection timeout failed"]
    assert seen[0]["log_failure"].check(ZeroDivisionError)


@pytest.mark.parametrize("delay", [0, 0.05, 0.2, 7.3])
def test_short_and_odd_delays_land_in_the_next_bucket_boundary(delay):
    """
    Whatever the delay, the call waits at least that long and at most one
    bucket more.
    """
    clock, ran = Clock(), []
    clock.advance(123.456)
    timer = BucketTimer(clock)
    start = clock.seconds()
    timer.call_later(delay, lambda: ran.append(clock.seconds() - start))
    while not ran:
        clock.advance(0.01)
    assert delay - 1e-9 <= ran[0] <= delay + BUCKET + 0.011
