"""
The parent's side of C{--workers}: it opens the listening sockets, runs the
workers on them and restarts any that dies.
"""


from __future__ import annotations

import base64
import os
import pickle
import socket
import sys
from dataclasses import dataclass
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.protocol import ProcessProtocol
from twisted.logger import Logger

from wsservice.config import ServiceConfig

#: The environment variable that carries a worker's L{WorkerSpec}.
SPEC_ENV = "WSSERVICE_WORKER_SPEC"
#: The first file descriptor number of the inherited listening sockets.
FIRST_FD = 3


@dataclass(frozen=True)
class ListenAddress:
    """
    A TCP listener a worker parent can open: C{tcp:PORT[:interface=I][:backlog=N]}
    (or C{tcp6:}).
    """

    family: int
    interface: str
    port: int
    backlog: int = 1024


def checkListen(description: str) -> ListenAddress:
    """
    Parse a C{--listen} description for C{--workers}; C{ValueError} for
    anything but plain TCP, which is all a parent can open and pass on.
    """
    parts, current, escaped = [], "", False
    for ch in description:
        if escaped:
            current += ch
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == ":":
            parts.append(current)
            current = ""
        else:
            current += ch
    parts.append(current)
    kind, args = parts[0], parts[1:]
    if kind not in ("tcp", "tcp6") or not args:
        raise ValueError(f"{description!r}: workers can share only tcp:PORT listeners")
    positional = [a for a in args if "=" not in a]
    options = dict(a.split("=", 1) for a in args if "=" in a)
    unknown = set(options) - {"interface", "backlog", "port"}
    if unknown or len(positional) > 1:
        raise ValueError(f"{description!r}: unsupported options {sorted(unknown)}")
    port = int(positional[0] if positional else options["port"])
    family = socket.AF_INET6 if kind == "tcp6" or ":" in options.get("interface", "") else socket.AF_INET
    default = "::" if family == socket.AF_INET6 else ""
    return ListenAddress(family, options.get("interface", default), port,
                         int(options.get("backlog", 1024)))


def openListener(address: ListenAddress) -> socket.socket:
    """
    A bound, listening, non-blocking socket for workers to adopt.
    """
    sock = socket.socket(address.family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((address.interface, address.port))
    sock.listen(address.backlog)
    sock.setblocking(False)
    return sock


@dataclass(frozen=True)
class WorkerSpec:
    """
    What a worker needs from its parent: the configuration, the families of
    the inherited sockets (at L{FIRST_FD} onwards) and its index for logs.
    """

    config: ServiceConfig
    families: tuple[int, ...]
    index: int

    def encode(self) -> str:
        return base64.b64encode(pickle.dumps(self)).decode("ascii")

    @classmethod
    def decode(cls, text: str) -> "WorkerSpec":
        # Only the parent writes this, into its own child's environment.
        return pickle.loads(base64.b64decode(text))


class _Worker(ProcessProtocol):
    """
    The parent's side of one worker process.  The worker's output is logged
    line by line through the parent, so it goes wherever the parent's log
    goes (a file, or nowhere-but-syslog when daemonised).
    """

    _log = Logger()

    def __init__(self, supervisor: "WorkerSupervisor", index: int) -> None:
        self.supervisor = supervisor
        self.index = index
        self.started = 0.0
        self.ended: Deferred[None] = Deferred()
        self._partial = b""
        self.pid = 0

    def outReceived(self, data: bytes) -> None:
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()
        if len(self._partial) > 65536:  # a runaway line is cut, not hoarded
            lines.append(self._partial)
            self._partial = b""
        for line in lines:
            self._log.info("[worker {index} pid {pid}] {line}", index=self.index,
                           pid=self.pid, line=line.decode("utf-8", "replace"))

    errReceived = outReceived

    def processEnded(self, reason: Any) -> None:
        self.supervisor._ended(self, reason)
        self.ended.callback(None)


class WorkerSupervisor(Service):
    """
    Opens the listeners, runs C{config.workers} workers on them and restarts
    any that dies; on stop, SIGTERMs them all and waits for them to exit.
    """

    _log = Logger()

    def __init__(self, config: ServiceConfig, reactor: Any,
                 command: list[str] | None = None) -> None:
        self._config = config
        self._reactor = reactor
        self._command = command or [
            sys.executable, "-c", "from wsservice.workers.worker import workerMain; workerMain()"]
        self._sockets: list[socket.socket] = []
        self._workers: dict[int, _Worker] = {}
        self._failures: dict[int, int] = {}
        self._restarts: dict[int, Any] = {}
        self._stopping = False

    def startService(self) -> None:
        super().startService()
        self._stopping = False
        for description in self._config.listen:
            sock = openListener(checkListen(description))
            self._sockets.append(sock)
            self._log.info("workers share {description} on port {port}",
                           description=description, port=sock.getsockname()[1])
        for index in range(self._config.workers):
            self._spawn(index)

    def workerPIDs(self) -> dict[int, int]:
        """
        The process id of each running worker, by index.
        """
        return {i: w.pid for i, w in self._workers.items()}

    def _spawn(self, index: int) -> None:
        self._restarts.pop(index, None)
        if self._stopping:
            return
        spec = WorkerSpec(self._config, tuple(s.family for s in self._sockets), index)
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        env[SPEC_ENV] = spec.encode()
        childFDs: dict[int, Any] = {0: "w", 1: "r", 2: "r"}
        for offset, sock in enumerate(self._sockets):
            childFDs[FIRST_FD + offset] = sock.fileno()
        worker = _Worker(self, index)
        worker.started = self._reactor.seconds()
        process = self._reactor.spawnProcess(worker, self._command[0], self._command, env=env,
                                             childFDs=childFDs)
        worker.pid = process.pid
        self._workers[index] = worker
        self._log.info("started worker {index} as pid {pid}", index=index, pid=worker.pid)

    def _ended(self, worker: _Worker, reason: Any) -> None:
        if self._workers.get(worker.index) is worker:
            del self._workers[worker.index]
        if self._stopping:
            self._log.info("worker {index} exited: {why}", index=worker.index,
                           why=reason.getErrorMessage())
            return
        lived = self._reactor.seconds() - worker.started
        failures = self._failures[worker.index] = (
            0 if lived > 10 else self._failures.get(worker.index, 0) + 1)
        # A worker that keeps dying at once is restarted ever more slowly.
        delay = min(10.0, 0.1 * 2 ** failures) if failures else 0.0
        self._log.warn("worker {index} died ({why}); restarting it in {delay:.1f}s",
                       index=worker.index, why=reason.getErrorMessage(), delay=delay)
        self._restarts[worker.index] = self._reactor.callLater(delay, self._spawn, worker.index)

    def stopService(self) -> Deferred[Any]:
        super().stopService()
        self._stopping = True
        for call in self._restarts.values():
            if call.active():
                call.cancel()
        self._restarts.clear()
        workers = list(self._workers.values())
        for worker in workers:
            self._signal(worker, "TERM")
        # Each worker waits for its clients up to --shutdown-timeout.
        grace = self._config.limits.shutdownTimeout + 5
        killer = self._reactor.callLater(grace, self._killAll)
        d = DeferredList([w.ended for w in workers], consumeErrors=True)

        def done(_: Any) -> None:
            if killer.active():
                killer.cancel()
            for sock in self._sockets:
                sock.close()
            self._sockets.clear()

        return d.addCallback(done)

    def _killAll(self) -> None:
        for worker in list(self._workers.values()):
            self._log.warn("worker {index} did not exit in time; killing it", index=worker.index)
            self._signal(worker, "KILL")

    def _signal(self, worker: _Worker, name: str) -> None:
        try:
            worker.transport.signalProcess(name)
        except Exception:
            pass  # already gone
