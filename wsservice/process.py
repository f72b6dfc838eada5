"""
What the service changes about its own process, and when: the open-file
limit, the garbage collector's pace and clean exits on signals, all done by
L{ProcessSettings} when the service starts (so building a service changes
nothing), and the one way the shutdowns wait for something with a deadline
(L{atMost}).

twistd re-raises the signal that stopped the reactor once it has stopped,
so a process stopped by SIGTERM exits with -15 even after a graceful
shutdown.  L{exitCleanlyOnSignals} stops the reactor the same way (every
service's C{stopService} runs, so clients get their 1001) without that
re-raise, and the process exits 0.
"""

from __future__ import annotations

import gc
import resource
import signal
from typing import Any, Callable, TypeVar

from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.internet.error import ReactorNotRunning
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

_log = Logger()

#: Descriptors kept for listeners, logs, the broker and files served.
SPARE = 64

T = TypeVar("T")

#: Allocations between two collections of the youngest generation (Python's
#: default is 700), and how many of those make a middle one (10).
GC_THRESHOLD = (50_000, 20)


def raiseOpenFileLimit(connections: int) -> int:
    """
    Raise the soft open-file limit towards the hard one, enough for
    C{connections} sockets if allowed; warn when it cannot be enough.  Every
    WebSocket is a file descriptor, and the usual soft limit of 1024 is far
    below a service's C{--max-connections}.

    @return: the soft limit now in force.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = connections + SPARE if connections else hard
    if hard != resource.RLIM_INFINITY:
        wanted = min(wanted, hard)
    if wanted > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        soft = wanted
    if connections and soft < connections + SPARE:
        _log.warn(
            "the open-file limit {limit} is below --max-connections {connections}; "
            "connections past it will fail (raise the hard limit, e.g. ulimit -Hn)",
            limit=soft,
            connections=connections,
        )
    return soft


def exitCleanlyOnSignals(reactor: Any) -> None:
    """
    Once C{reactor} runs, make SIGTERM and SIGINT stop it gracefully.
    """

    def stop(signum: int, frame: Any) -> None:
        _log.info("received {signal}, shutting down", signal=signal.Signals(signum).name)
        reactor.callFromThread(stopReactorOnce, reactor)

    def install() -> None:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, stop)

    reactor.callWhenRunning(install)


def stopReactorOnce(reactor: Any) -> None:
    """
    Stop C{reactor}, unless it is stopping already.
    """
    try:
        reactor.stop()
    except ReactorNotRunning:
        pass


def paceGarbageCollector() -> None:
    """
    Collect less often than Python's defaults, which are made for programs
    that allocate little: a connection's handshake allocates hundreds of
    objects that live as long as it does, so at the default pace the
    collector scans the young ones every couple of handshakes and, as the
    heap grows, the whole heap every few thousand; that was a tenth of the
    CPU of 10,000 clients joining a room, and most of its p99 (bench
    scenario 7: 221-224 ms, 107-159 ms at this pace).  What exists when the
    service starts (modules, plugins, configuration) is frozen out of every
    collection.  Garbage cycles are still collected, only in bigger steps.
    """
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLD, gc.get_threshold()[2])


class ProcessSettings(Service):
    """
    Applies the process-wide settings when the service tree starts: the
    open-file limit for C{maxConnections}, the garbage collector's pace,
    and clean exits on signals.
    """

    def __init__(self, reactor: Any, maxConnections: int) -> None:
        self._reactor = reactor
        self._maxConnections = maxConnections

    def startService(self) -> None:
        super().startService()
        raiseOpenFileLimit(self._maxConnections)
        paceGarbageCollector()
        exitCleanlyOnSignals(self._reactor)


def atMost(clock: IReactorTime, seconds: float, d: Deferred[T],
           onTimeout: Callable[[], None] | None = None) -> Deferred[T | None]:
    """
    A L{Deferred} that fires with C{d}'s result, or with C{None} after
    C{seconds} if C{d} has not fired by then (C{onTimeout} is called first).

    C{d} itself is never cancelled: what it waits for may still happen, and
    whoever fires it must not find it fired already.  Its result is taken
    over by the returned L{Deferred}.
    """
    result: Deferred[T | None] = Deferred()

    def expired() -> None:
        if onTimeout is not None:
            onTimeout()
        if not result.called:
            result.callback(None)

    timer = clock.callLater(seconds, expired)

    def fired(value: Any) -> Any:
        if timer.active():
            timer.cancel()
        if not result.called:
            result.callback(value)

    d.addBoth(fired)
    return result
