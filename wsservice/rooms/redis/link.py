"""
One connection to Redis that keeps itself open: connect, and after a failed
attempt or a lost connection connect again with capped exponential backoff.

The protocols are txredisapi's; the reconnecting is ours because
txredisapi's pool (and Twisted's C{ClientService} under it) logs a line on
every retry and schedules on the global reactor.  Here the clock is
injected, and the link itself logs nothing: its owner hears about each
outage once (L{RedisLink.onDown}) and about each recovery once
(L{RedisLink.onUp}), and decides what to log.
"""

from __future__ import annotations

import random
from typing import Any, Callable

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime, IStreamClientEndpoint
from twisted.internet.protocol import Factory
from twisted.logger import Logger


class _LinkFactory(Factory):
    """
    Builds one txredisapi protocol for L{RedisLink}, with the few factory
    attributes txredisapi's protocols look up on a failed C{AUTH}/C{SELECT}.
    """

    noisy = False
    isLazy = True

    def __init__(self, link: "RedisLink") -> None:
        self._link = link

    def buildProtocol(self, addr: Any) -> Any:
        p = self._link.makeProtocol()
        p.factory = self
        return p

    def stopTrying(self) -> None:
        # txredisapi calls this when SELECT fails: the link retries anyway,
        # with backoff, and the owner has been told the link is down.
        pass

    def connectionError(self, why: str) -> None:
        self._link.lastError = why


class RedisLink:
    """
    Keeps one txredisapi protocol connected to C{endpoint}.

    @ivar protocol: the ready protocol (C{SELECT} done), or C{None}.
    @ivar lastError: a description of the latest failure, for logs.
    """

    _log = Logger()

    def __init__(
        self,
        clock: IReactorTime,
        endpoint: IStreamClientEndpoint,
        makeProtocol: Callable[[], Any],
        onUp: Callable[[Any], None],
        onDown: Callable[[str], None],
        initialDelay: float = 0.1,
        maxDelay: float = 5.0,
    ) -> None:
        self._clock = clock
        self._endpoint = endpoint
        self.makeProtocol = makeProtocol
        self._onUp = onUp
        self._onDown = onDown
        self._initialDelay = initialDelay
        self._maxDelay = maxDelay
        self.protocol: Any = None
        self.lastError = ""
        self._attempts = 0
        self._down = True
        self._toldDown = False
        self._stopped = True
        self._retry: Any = None
        self._connecting: Deferred[Any] | None = None
        self._current: Any = None

    def start(self) -> None:
        """
        Start connecting.
        """
        self._stopped = False
        self._connect()

    def _connect(self) -> None:
        self._retry = None
        d = self._connecting = self._endpoint.connect(_LinkFactory(self))
        d.addCallbacks(self._made, self._failed)

    def _made(self, p: Any) -> None:
        self._connecting = None
        self._current = p
        p.whenDisconnected().addCallback(self._lost)
        p.whenConnected().addCallback(self._ready)

    def _ready(self, p: Any) -> None:
        if self._stopped or p is not self._current:
            return
        self._attempts = 0
        self._down = False
        self._toldDown = False
        self.protocol = p
        self._onUp(p)

    def _failed(self, failure: Any) -> None:
        self._connecting = None
        if self._stopped:
            return
        self.lastError = failure.getErrorMessage()
        self._tellDown()
        self._schedule()

    def _lost(self, p: Any) -> None:
        if p is not self._current:
            return
        self._current = None
        wasUp = self.protocol is p
        self.protocol = None
        if self._stopped:
            return
        if wasUp:
            self.lastError = "connection lost"
        self._down = True
        self._tellDown()
        self._schedule()

    def _tellDown(self) -> None:
        if not self._toldDown:
            self._toldDown = True
            self._onDown(self.lastError)

    def _schedule(self) -> None:
        self._attempts += 1
        delay = min(self._maxDelay, self._initialDelay * 2 ** min(self._attempts - 1, 30))
        # Jitter spreads the reconnections of many nodes after a Redis restart.
        delay *= random.uniform(0.8, 1.0)
        self._retry = self._clock.callLater(delay, self._connect)

    def stop(self) -> Deferred[Any]:
        """
        Stop reconnecting and close the connection; fires once it is closed.
        """
        self._stopped = True
        if self._retry is not None and self._retry.active():
            self._retry.cancel()
        self._retry = None
        if self._connecting is not None:
            self._connecting.cancel()
        p, self._current, self.protocol = self._current, None, None
        if p is None or p.transport is None:
            return succeed(None)
        closed = p.whenDisconnected()
        p.transport.loseConnection()
        return closed.addCallback(lambda _: None)
