"""
Timeouts for many connections on few reactor timers: what Autobahn's
protocols use for their ping, pong and closing-handshake timeouts.

Autobahn's own batched timer (txaio's) keeps each bucket's calls in a list
and buckets by whole seconds, so cancelling one -- which every connection
does at least once, when it closes -- searches a list of everything due in
that second: O(connections) per close, felt in a reconnect storm.  Here a
bucket is a dict, so cancelling is O(1), and buckets are L{BUCKET} seconds
wide.
"""

from __future__ import annotations

import math
from typing import Any, Callable

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

#: Seconds of each bucket: a timeout fires up to this much late, never early.
BUCKET = 0.2
#: Calls run per reactor turn when a bucket falls due; the rest follow in
#: later turns, so a bucket of thousands of pings never stalls the reactor.
CHUNK = 1000


class Timeout:
    """
    One pending call of a L{BucketTimer}; C{cancel} it, as with txaio's.
    """

    __slots__ = ("_timer", "_key", "_func", "_args", "_kwargs")

    def __init__(self, timer: BucketTimer, key: int, func: Callable[..., Any],
                 args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        self._timer: BucketTimer | None = timer
        self._key = key
        self._func: Callable[..., Any] | None = func
        self._args = args
        self._kwargs = kwargs

    def cancel(self) -> None:
        """
        Drop the call; harmless once it ran or was cancelled.
        """
        timer, self._timer, self._func = self._timer, None, None
        if timer is not None:
            timer._cancel(self._key, self)

    def _fire(self) -> None:
        func, self._timer, self._func = self._func, None, None
        if func is not None:
            func(*self._args, **self._kwargs)


class BucketTimer:
    """
    txaio's C{IBatchedTimer} (C{call_later}, then C{cancel} on what it
    returns): calls due in the same L{BUCKET} share one reactor timer.
    """

    _log = Logger()

    def __init__(self, clock: IReactorTime, bucket: float = BUCKET, chunk: int = CHUNK) -> None:
        self._clock = clock
        self._bucket = bucket
        self._chunk = chunk
        self._buckets: dict[int, tuple[IDelayedCall, dict[Timeout, None]]] = {}

    def call_later(self, delay: float, func: Callable[..., Any], *args: Any,
                   **kwargs: Any) -> Timeout:
        now = self._clock.seconds()
        key = math.ceil((now + delay) / self._bucket)
        timeout = Timeout(self, key, func, args, kwargs)
        entry = self._buckets.get(key)
        if entry is None:
            timer = self._clock.callLater(max(0.0, key * self._bucket - now), self._due, key)
            entry = self._buckets[key] = (timer, {})
        entry[1][timeout] = None
        return timeout

    def pending(self) -> int:
        """
        How many calls are waiting.
        """
        return sum(len(calls) for _, calls in self._buckets.values())

    def _cancel(self, key: int, timeout: Timeout) -> None:
        entry = self._buckets.get(key)
        if entry is None:
            return
        timer, calls = entry
        calls.pop(timeout, None)
        if not calls:
            del self._buckets[key]
            timer.cancel()

    def _due(self, key: int) -> None:
        _, calls = self._buckets.pop(key)
        self._run(list(calls))

    def _run(self, calls: list[Timeout]) -> None:
        for timeout in calls[:self._chunk]:
            try:
                timeout._fire()
            except Exception:
                self._log.failure("a connection timeout failed")
        rest = calls[self._chunk:]
        if rest:
            self._clock.callLater(0, self._run, rest)
