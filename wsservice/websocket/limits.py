"""
Per-connection limits: a token bucket for incoming message rates, and the
budget of bytes a connection may leave unsent.
"""

from __future__ import annotations

from twisted.internet.interfaces import IPushProducer
from zope.interface import implementer


class TokenBucket:
    """
    Allows C{rate} events per second on average and bursts of C{burst}.
    """

    __slots__ = ("rate", "burst", "_tokens", "_last")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self._tokens = burst
        self._last = now

    def take(self, now: float) -> bool:
        """
        Spend one token if there is one; C{False} means over the limit.
        """
        tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now
        if tokens < 1.0:
            self._tokens = tokens
            return False
        self._tokens = tokens - 1.0
        return True


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
