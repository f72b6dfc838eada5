"""
The child's side of C{--workers}: a worker process serves the listening
sockets it inherited from its parent, and shuts down when the parent goes.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Callable

from twisted.application.service import IService, Service
from twisted.internet.interfaces import IReadDescriptor
from twisted.logger import FileLogObserver, formatEventAsClassicLogText, globalLogBeginner
from zope.interface import implementer

from wsservice.config import ServiceConfig
from wsservice.workers.supervisor import FIRST_FD, SPEC_ENV, WorkerSpec


class AdoptedPort(Service):
    """
    Serves C{factory} on a listening socket inherited from the parent.
    """

    def __init__(self, reactor: Any, fd: int, family: int, factory: Any) -> None:
        self._reactor = reactor
        self._fd = fd
        self._family = family
        self._factory = factory
        self._port: Any = None

    def startService(self) -> None:
        super().startService()
        self._port = self._reactor.adoptStreamPort(self._fd, self._family, self._factory)
        os.close(self._fd)  # adoptStreamPort made its own copy

    def stopService(self) -> Any:
        super().stopService()
        if self._port is not None:
            return self._port.stopListening()
        return None


@implementer(IReadDescriptor)
class _ParentWatch:
    """
    Reads the worker's stdin, a pipe from the parent: end of file means the
    parent is gone, so the worker shuts down instead of lingering.
    """

    def __init__(self, reactor: Any, gone: Callable[[], None]) -> None:
        self._reactor = reactor
        self._gone = gone

    def fileno(self) -> int:
        return 0

    def doRead(self) -> None:
        try:
            data = os.read(0, 4096)
        except BlockingIOError:
            return
        if not data:
            self._reactor.removeReader(self)
            self._gone()

    def connectionLost(self, reason: Any) -> None:
        # epoll reports a pipe whose writer has gone as a hang-up, which the
        # reactor turns into this call rather than a read of end of file.
        self._gone()

    def logPrefix(self) -> str:
        return "parent-watch"


def adoptedListeners(families: tuple[int, ...]) -> Callable[[ServiceConfig, Any, Any], list[IService]]:
    """
    L{wsservice.service.buildService}'s C{listeners} for a worker.
    """

    def listeners(config: ServiceConfig, site: Any, reactor: Any) -> list[IService]:
        return [AdoptedPort(reactor, FIRST_FD + i, family, site)
                for i, family in enumerate(families)]

    return listeners


def workerMain() -> None:
    """
    The entry point of a worker process (run by L{WorkerSupervisor}).
    """
    from twisted.internet import reactor

    from wsservice.process import exitCleanlyOnSignals, stopReactorOnce
    from wsservice.registry import HandlerRegistry, discoverPlugins
    from wsservice.service import buildService

    spec = WorkerSpec.decode(os.environ.pop(SPEC_ENV))
    # The parent adds the time and the worker's name when it logs the line.
    globalLogBeginner.beginLoggingTo(
        [FileLogObserver(sys.stdout, lambda e: (formatEventAsClassicLogText(
            e, formatTime=lambda when: "") or "").lstrip(" "))],
        redirectStandardIO=False,
    )
    service = buildService(spec.config, HandlerRegistry.fromPlugins(discoverPlugins()), reactor,
                           listeners=adoptedListeners(spec.families))
    exitCleanlyOnSignals(reactor)
    os.set_blocking(0, False)
    reactor.addReader(_ParentWatch(reactor, lambda: stopReactorOnce(reactor)))
    reactor.callWhenRunning(service.startService)
    reactor.addSystemEventTrigger("before", "shutdown", service.stopService)
    reactor.run()
