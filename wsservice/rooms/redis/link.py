"""
One connection to Redis that keeps itself open: connect, and after a failed
attempt or a lost connection connect again with capped exponential backoff.

The protocols are txredisapi's; the reconnecting is ours because
txredisapi's pool (and Twisted's C{ClientService} under it) logs a line on
every retry and schedules on the global reactor.  Here the clock is
injected, and the link itself logs nothing: its owner hears about each
outage once (L{RedisLink.onDown}) and about each recovery once
(L{RedisLink.onUp}), and decides what to log.

With Sentinel, the link's endpoint is a L{SentinelEndpoint}, which asks the
sentinels where the master is before every attempt; the link checks the
server's C{ROLE} before it counts as up, and L{SentinelWatch} hears of a
failover from the sentinels so the link can follow it at once
(L{RedisLink.follow}) instead of at its next failed command.  txredisapi's
own C{Sentinel} is not used for the same reasons as its pool, and because it
asks every sentinel at once and keeps a connection to each.
"""

from __future__ import annotations

import functools
import random
from collections import deque
from typing import Any, Callable, Sequence

from twisted.internet.defer import CancelledError, Deferred, inlineCallbacks, succeed
from twisted.internet.interfaces import IReactorTime, IStreamClientEndpoint
from twisted.internet.protocol import Factory
from twisted.logger import Logger
from zope.interface import implementer

from wsservice.rooms.redis.wire import joinHostPort

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

    @ivar protocol: the ready protocol (C{SELECT} done, and with
        C{requireMaster} the server's C{ROLE} checked), or C{None}.
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
        requireMaster: bool = False,
        setupTimeout: float = 10.0,
    ) -> None:
        """
        @param requireMaster: count the link as up only once the server's
            C{ROLE} says C{master} (with Sentinel, the server an address
            named may have become a replica since).
        @param setupTimeout: seconds a connected server may take to answer
            the set-up commands (C{SELECT}, C{ROLE}) before the attempt
            counts as failed.
        """
        self._clock = clock
        self._endpoint = endpoint
        self.makeProtocol = makeProtocol
        self._onUp = onUp
        self._onDown = onDown
        self._initialDelay = initialDelay
        self._maxDelay = maxDelay
        self._requireMaster = requireMaster
        self._setupTimeout = setupTimeout
        self.protocol: Any = None
        self.lastError = ""
        self._leaving: str | None = None
        self._attempts = 0
        self._down = True
        self._toldDown = False
        self._stopped = True
        self._retry: Any = None
        self._setupTimer: Any = None
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
        self._setupTimer = self._clock.callLater(self._setupTimeout, self._setupExpired, p)
        p.whenDisconnected().addCallback(self._lost)
        p.whenConnected().addCallback(self._setUp)

    def _setUp(self, p: Any) -> None:
        if self._stopped or p is not self._current:
            return
        if not self._requireMaster:
            self._ready(p)
            return

        def checked(role: Any) -> None:
            if p is not self._current:
                return
            kind = _text(role[0]) if isinstance(role, list) and role else repr(role)
            if kind == "master":
                self._ready(p)
                return
            self.lastError = f"{_peer(p)} is a {kind}, not the master"
            p.transport.loseConnection()

        def failed(failure: Any) -> None:
            if p is self._current:
                self.lastError = f"ROLE failed: {failure.getErrorMessage()}"
                p.transport.loseConnection()

        try:
            d = p.execute_command("ROLE")
        except Exception:  # lost meanwhile: _lost has it
            return
        d.addCallbacks(checked, failed)

    def _setupExpired(self, p: Any) -> None:
        self._setupTimer = None
        if p is self._current and self.protocol is not p and p.transport is not None:
            self.lastError = f"{_peer(p)} did not answer within {self._setupTimeout:g} s"
            p.transport.abortConnection()

    def _cancelSetupTimer(self) -> None:
        if self._setupTimer is not None and self._setupTimer.active():
            self._setupTimer.cancel()
        self._setupTimer = None

    def _ready(self, p: Any) -> None:
        if self._stopped or p is not self._current:
            return
        self._cancelSetupTimer()
        self._attempts = 0
        self._down = False
        self._toldDown = False
        self.protocol = p
        self._onUp(p)

    def _failed(self, failure: Any) -> None:
        self._connecting = None
        if self._stopped:
            return
        if not failure.check(CancelledError):  # by follow(), which says why
            self.lastError = failure.getErrorMessage()
        self._tellDown()
        self._schedule()

    def _lost(self, p: Any) -> None:
        if p is not self._current:
            return
        self._cancelSetupTimer()
        self._current = None
        wasUp = self.protocol is p
        self.protocol = None
        if self._stopped:
            return
        if wasUp:
            self.lastError = self._leaving or "connection lost"
        self._leaving = None
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

    def follow(self, host: str, port: int) -> None:
        """
        The master is now at C{host}:C{port}: leave a connection to any other
        server, and if waiting to retry, retry now.
        """
        if self._stopped:
            return
        self._attempts = 0
        p = self._current
        if p is not None and p.transport is not None:
            if _peer(p) != joinHostPort(host, port):
                self._leaving = self.lastError = f"the master moved to {joinHostPort(host, port)}"
                p.transport.abortConnection()
            return
        if self._connecting is not None:
            # It may be on its way to the old master.
            self._connecting.cancel()
        if self._retry is not None and self._retry.active():
            self._retry.cancel()
            self._connect()

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
        self._cancelSetupTimer()
        p, self._current, self.protocol = self._current, None, None
        if p is None or p.transport is None:
            return succeed(None)
        closed = p.whenDisconnected()
        p.transport.loseConnection()
        return closed.addCallback(lambda _: None)


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _peer(p: Any) -> str:
    """
    The C{host:port} a protocol is connected to, for comparisons and logs.
    """
    peer = p.transport.getPeer() if p.transport is not None else None
    host, port = getattr(peer, "host", None), getattr(peer, "port", None)
    return joinHostPort(host, port) if host is not None else "the server"


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


# -- Sentinel -----------------------------------------------------------------


class _OneShotFactory(Factory):
    noisy = False

    def buildProtocol(self, addr: Any) -> Any:
        from txredisapi import RedisProtocol

        p = RedisProtocol(charset=None, convertNumbers=False)
        p.factory = self
        return p


@inlineCallbacks
def _ask(endpoint: IStreamClientEndpoint, *command: str) -> Any:
    p = yield endpoint.connect(_OneShotFactory())
    try:
        yield p.whenConnected()
        reply = yield p.execute_command(*command)
    finally:
        if p.transport is not None:
            p.transport.loseConnection()
    return reply


@implementer(IStreamClientEndpoint)
class SentinelEndpoint:
    """
    Connects to the server the sentinels name as C{master}: before each
    connection, asks them in order (C{SENTINEL get-master-addr-by-name}),
    skipping those that do not answer, and connects where the first answer
    says.
    """

    def __init__(self, clock: IReactorTime,
                 sentinels: Sequence[tuple[str, IStreamClientEndpoint]], master: str,
                 connectTo: Callable[[str, int], IStreamClientEndpoint],
                 timeout: float = 2.0) -> None:
        """
        @param sentinels: each sentinel's name (for errors) and endpoint.
        @param connectTo: makes the endpoint of a server the sentinels name.
        @param timeout: seconds a sentinel may take to answer.
        """
        self._clock = clock
        self._sentinels = list(sentinels)
        self._master = master
        self._connectTo = connectTo
        self._timeout = timeout

    def connect(self, factory: Any) -> Deferred[Any]:
        return self._connect(factory)

    @inlineCallbacks
    def _connect(self, factory: Any) -> Any:
        host, port = yield self.discover()
        p = yield self._connectTo(host, port).connect(factory)
        return p

    @inlineCallbacks
    def discover(self) -> Any:
        """
        The master's C{(host, port)}, from the first sentinel that knows it;
        a C{ConnectionError} says what each sentinel said otherwise.
        """
        problems = []
        for name, endpoint in self._sentinels:
            try:
                reply = yield _ask(endpoint, "SENTINEL", "get-master-addr-by-name",
                                   self._master).addTimeout(self._timeout, self._clock)
            except CancelledError:
                raise
            except Exception as e:
                problems.append(f"{name}: {e or type(e).__name__}")
                continue
            if isinstance(reply, list) and len(reply) == 2:
                return _text(reply[0]), int(reply[1])
            problems.append(f"{name} knows no master {self._master!r}")
        raise ConnectionError(f"no sentinel named the master ({'; '.join(problems)})")


@implementer(IStreamClientEndpoint)
class _FirstReachable:
    """
    Connects through the first of C{endpoints} that connects.
    """

    def __init__(self, endpoints: Sequence[IStreamClientEndpoint]) -> None:
        self._endpoints = list(endpoints)

    @inlineCallbacks
    def connect(self, factory: Any) -> Any:
        error: Exception = ConnectionError("no endpoints")
        for endpoint in self._endpoints:
            try:
                p = yield endpoint.connect(factory)
            except CancelledError:
                raise
            except Exception as e:
                error = e
                continue
            return p
        raise error


class SentinelWatch:
    """
    Hears of failovers from the sentinels: subscribed to C{+switch-master}
    on the first sentinel that is reachable (the one L{SentinelEndpoint}
    asks first), it calls C{onMoved(host, port)} when C{master} moves.
    Logs an outage of every sentinel once, as the hub logs Redis's.
    """

    _log = Logger()

    def __init__(self, clock: IReactorTime,
                 sentinels: Sequence[tuple[str, IStreamClientEndpoint]], master: str,
                 onMoved: Callable[[str, int], None]) -> None:
        self._master = master
        self._onMoved = onMoved
        self._names = ", ".join(name for name, _ in sentinels)
        self.link = RedisLink(clock, _FirstReachable([e for _, e in sentinels]),
                              lambda: subscriber(self._news), self._up, self._down)

    def start(self) -> None:
        self.link.start()

    def stop(self) -> Deferred[Any]:
        return self.link.stop()

    def _up(self, p: Any) -> None:
        def failed(failure: Any) -> None:
            from txredisapi import ConnectionError as RedisConnectionError

            if not failure.check(RedisConnectionError):
                self._log.failure("SUBSCRIBE +switch-master failed", failure)

        try:
            p.subscribe("+switch-master").addErrback(failed)
        except Exception:  # lost meanwhile: the link reconnects
            return
        self._log.info("following failovers of master {master} through sentinel {sentinel}",
                       master=self._master, sentinel=_peer(p))

    def _down(self, why: str) -> None:
        self._log.warn("no sentinel of {sentinels} reachable for failover news ({why}); "
                       "retrying with backoff", sentinels=self._names, why=why)

    def _news(self, channel: bytes, message: bytes) -> None:
        words = _text(message).split()
        # +switch-master <master> <old ip> <old port> <new ip> <new port>
        if len(words) == 5 and words[0] == self._master and words[4].isdigit():
            self._onMoved(words[3], int(words[4]))
