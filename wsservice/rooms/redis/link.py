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

import functools
import random
from collections import deque
from typing import Any, Callable

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime, IStreamClientEndpoint
from twisted.internet.protocol import Factory
from twisted.logger import Logger

# txredisapi is imported where it is used: importing it installs the global
# reactor.


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


# -- pub/sub ------------------------------------------------------------------

#: At most this many channels go in one SUBSCRIBE command.
SUBSCRIBE_BATCH = 100


def subscriber(onMessage: Callable[[bytes, bytes], None]) -> Any:
    """
    A txredisapi pub/sub protocol (bytes in and out) that calls
    C{onMessage(channel, message)} for each message, and whose
    C{subscribe(channels)} fires once Redis confirmed every channel of it.

    txredisapi's own C{SubscriberProtocol} hands each confirmation to
    whichever command waits next: a SUBSCRIBE of N channels gets N
    confirmations, so the N-1 extra ones would fire later SUBSCRIBEs (whose
    channels may not be subscribed yet) or be dropped.  This one matches
    confirmations to SUBSCRIBEs by channel, and passes every other reply
    (C{ROLE}'s, before any SUBSCRIBE) through whole.
    """
    return _subscriberClass()(onMessage)


@functools.cache
def _subscriberClass() -> type:
    from txredisapi import BaseRedisProtocol, ResponseError, SubscriberProtocol
    from txredisapi import ConnectionError as RedisConnectionError

    class Subscriber(SubscriberProtocol):  # type: ignore[misc]
        def __init__(self, onMessage: Callable[[bytes, bytes], None]) -> None:
            super().__init__(charset=None, convertNumbers=False)
            self._onMessage = onMessage
            # channel -> [confirmations still due, Deferred] of each SUBSCRIBE
            # naming it, oldest first.
            self._confirming: dict[bytes, deque[list[Any]]] = {}
            self._gone = False

        def subscribe(self, channels: Any) -> Deferred[None]:
            names = [channels] if isinstance(channels, (str, bytes)) else list(channels)
            if self.transport is None or self._gone:
                raise RedisConnectionError("Not connected")
            encoded = [self._encode_value(name) for name in names]
            d: Deferred[None] = Deferred()
            if not encoded:
                d.callback(None)
                return d
            waiting = [len(encoded), d]
            for channel in encoded:
                self._confirming.setdefault(channel, deque()).append(waiting)
            self.transport.write(self._build_command("SUBSCRIBE", *encoded))
            return d

        def unsubscribe(self, channels: Any) -> Deferred[None]:
            names = [channels] if isinstance(channels, (str, bytes)) else list(channels)
            if self.transport is None or self._gone:
                raise RedisConnectionError("Not connected")
            self.transport.write(self._build_command("UNSUBSCRIBE", *names))
            return succeed(None)

        def replyReceived(self, reply: Any) -> None:
            if isinstance(reply, list) and len(reply) == 3:
                kind = reply[0]
                if kind == b"message":
                    self._onMessage(reply[1], reply[2])
                    return
                if kind == b"subscribe":
                    self._confirmed(reply[1])
                    return
                if kind == b"unsubscribe":
                    return
            if isinstance(reply, ResponseError) and self._confirming:
                # Refused: which SUBSCRIBE cannot be told, so start over on
                # a new connection.
                self._failAll(reply)
                self.transport.loseConnection()
                return
            BaseRedisProtocol.replyReceived(self, reply)

        def _confirmed(self, channel: bytes) -> None:
            queue = self._confirming.get(channel)
            if not queue:
                return
            waiting = queue.popleft()
            if not queue:
                del self._confirming[channel]
            waiting[0] -= 1
            if waiting[0] == 0:
                waiting[1].callback(None)

        def _failAll(self, error: Exception) -> None:
            confirming, self._confirming = self._confirming, {}
            failed: set[int] = set()
            for queue in confirming.values():
                for waiting in queue:
                    if id(waiting) not in failed:
                        failed.add(id(waiting))
                        waiting[1].errback(error)

        def connectionLost(self, why: Any) -> None:
            self._gone = True
            super().connectionLost(why)
            self._failAll(RedisConnectionError("Lost connection"))

    return Subscriber
