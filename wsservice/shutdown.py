"""
Clean exits on SIGTERM and SIGINT.

twistd re-raises the signal that stopped the reactor once it has stopped,
so a process stopped by SIGTERM exits with -15 even after a graceful
shutdown.  These handlers stop the reactor the same way (every service's
C{stopService} runs, so clients get their 1001) without that re-raise, and
the process exits 0.
"""

from __future__ import annotations

import signal
from typing import Any

from twisted.internet.error import ReactorNotRunning
from twisted.logger import Logger

_log = Logger()


def exitCleanlyOnSignals(reactor: Any) -> None:
    """
    Once C{reactor} runs, make SIGTERM and SIGINT stop it gracefully.
    """

    def stop(signum: int, frame: Any) -> None:
        _log.info("received {signal}, shutting down", signal=signal.Signals(signum).name)
        reactor.callFromThread(_stopOnce, reactor)

    def install() -> None:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, stop)

    reactor.callWhenRunning(install)


def _stopOnce(reactor: Any) -> None:
    try:
        reactor.stop()
    except ReactorNotRunning:
        pass
