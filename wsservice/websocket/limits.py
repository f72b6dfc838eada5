"""
Per-connection limits: the rate of incoming messages (L{RateGate}), and the
budget of bytes a connection may leave unsent (L{SendBudget}).
"""

from __future__ import annotations

from collections import deque

from twisted.internet.interfaces import IPushProducer
from zope.interface import implementer


class RateGate:
    """
    Lets a connection's messages through at C{rate} per second on average,
    in bursts of up to C{burst}; past that it holds them back, so the
    service handles them at the rate (and stops reading the connection
    meanwhile), and says when the connection has been over the rate for
    C{grace} seconds on end.

    Only messages already read are held: the caller stops reading once the
    gate starts holding, so what it holds is bounded by one read.
    """

    __slots__ = ("rate", "burst", "grace", "_tokens", "_last", "_held", "_since")

    def __init__(self, rate: float, burst: float, grace: float, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self.grace = grace
        self._tokens = burst
        self._last = now
        self._held: deque[tuple[bytes, bool]] | None = None
        self._since = now

    @property
    def holding(self) -> int:
        """
        How many messages wait.
        """
        return len(self._held) if self._held is not None else 0

    def _take(self, now: float) -> bool:
        tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now
        if tokens < 1.0:
            self._tokens = tokens
            return False
        self._tokens = tokens - 1.0
        return True

    def admit(self, payload: bytes, isBinary: bool, now: float) -> bool:
        """
        Whether a message that arrived C{now} may be handled at once;
        C{False} means the gate holds it (behind any it holds already).
        """
        if self._held is None:
            if self._take(now):
                return True
            self._held = deque()
            self._since = now
        self._held.append((payload, isBinary))
        return False

    def release(self, now: float) -> list[tuple[bytes, bool]]:
        """
        The held messages that may be handled now, oldest first.
        """
        held = self._held
        released: list[tuple[bytes, bool]] = []
        while held and self._take(now):
            released.append(held.popleft())
        if held is not None and not held:
            self._held = None
        return released

    def wait(self, now: float) -> float:
        """
        Seconds until the next held message may go.
        """
        tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        return max(0.0, (1.0 - tokens) / self.rate)

    def expired(self, now: float) -> bool:
        """
        Whether messages have been waiting for C{grace} seconds on end.
        """
        return self._held is not None and now - self._since >= self.grace

    def drop(self) -> None:
        """
        Forget what is held (the connection is closing).
        """
        self._held = None


@implementer(IPushProducer)
class SendBudget:
    """
    Watches a connection's transport through the producer API: the
    transport pauses it when its buffer is full, and while it is paused
    every byte written counts against C{limit}.  The transport resuming it
    (its buffer drained) starts the count again.

    @ivar limit: bytes that may be written while the transport is paused.
    """

    __slots__ = ("paused", "pending", "limit")

    def __init__(self, limit: int) -> None:
        self.paused = False
        self.pending = 0
        self.limit = limit

    def charge(self, size: int) -> bool:
        """
        Account for C{size} bytes about to be written.

        @return: whether the connection is now over its limit.
        """
        if not self.paused:
            return False
        self.pending += size
        return self.pending > self.limit

    def pauseProducing(self) -> None:
        self.paused = True

    def resumeProducing(self) -> None:
        self.paused = False
        self.pending = 0

    def stopProducing(self) -> None:
        self.paused = True
