"""
The servers under test, each in a child process whose output gives its
port: our service, the reference Node C{ws} and Python C{websockets}
servers (their scripts are in C{bench/servers/}), and our C{--workers} pool
with its own redis-server.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
from collections import Counter
from pathlib import Path
from typing import Any, Sequence

from bench.procs import (
    LOAD_CORE, SERVER_CORE, BenchError, childSetup, descendants, somaxconn, usableCores,
)
from tests.support.processes import LOOPBACK, REPO, RedisServer, serviceCommand

SERVERS = Path(__file__).resolve().parent / "servers"


class Server:
    """
    A server under test in a child process pinned to the server core; its
    output is drained by a thread and kept for error reports.
    """

    #: Start the server as the leader of a new process group (for servers
    #: that fork, so that what is left of them can be killed at once).
    newSession = False

    def __init__(self, name: str, argv: list[str], ready: str, env: dict[str, str] | None = None,
                 pin: bool = True) -> None:
        self.name = name
        self.argv = argv
        self.ready = re.compile(ready)
        self.env = env
        self.pin = pin
        #: The cores the server may run on, whose busy time is watched.
        self.cores: tuple[int, ...] = (SERVER_CORE,) if pin else tuple(sorted(usableCores()))
        self.lines: list[str] = []
        self.port: int | None = None
        self.proc: subprocess.Popen[str] | None = None
        self._portSeen = threading.Event()

    def start(self, timeout: float = 30) -> "Server":
        env = dict(os.environ, PYTHONUNBUFFERED="1", **(self.env or {}))
        self.proc = subprocess.Popen(
            self.argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            text=True, env=env, cwd=str(REPO), start_new_session=self.newSession,
            preexec_fn=childSetup(SERVER_CORE if self.pin else None),
        )
        threading.Thread(target=self._pump, daemon=True).start()
        if not self._portSeen.wait(timeout) or self.port is None:
            self.stop()
            raise BenchError(f"{self.name} did not start:\n" + "\n".join(self.lines[-30:]))
        return self

    def _pump(self) -> None:
        assert self.proc and self.proc.stdout
        for line in self.proc.stdout:
            if len(self.lines) < 2000:
                self.lines.append(line.rstrip())
            self._watch(line)
        self._portSeen.set()

    def _watch(self, line: str) -> None:
        """
        Read one line of the server's output: the ready line gives the port.
        """
        if self.port is None:
            m = self.ready.search(line)
            if m:
                self.port = int(m.group(1))
                self._portSeen.set()

    def processes(self) -> dict[str, list[int]]:
        """
        The processes whose CPU is the server's, by role.
        """
        return {"server": [self.pid]}

    def summary(self) -> dict[str, Any]:
        """
        Figures the server's own output gave during a run, for the results.
        """
        return {}

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def failure(self) -> str:
        """
        Why the server is not L{alive}, for the errors.
        """
        return f"{self.name} exited: " + " | ".join(self.lines[-5:])

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


#: The limits the load generator cannot live with: it is one client address
#: opening up to 10,000 connections and sending as fast as it can.
LIFTED_LIMITS = ("--max-connections", "0", "--max-messages-per-second", "0")


def ourCommand(python: str, serverArgs: Sequence[str] = (), lifted: bool = True) -> list[str]:
    """
    Our service's command line, as the scenarios run it: with
    L{LIFTED_LIMITS}, or (not C{lifted}) every option at its default.
    C{serverArgs} are extra options (C{--server-arg}), e.g. to measure a
    proposed one.
    """
    return serviceCommand(*LOOPBACK, *(LIFTED_LIMITS if lifted else ()), *serverArgs,
                          python=python)


def ours(python: str, serverArgs: Sequence[str] = (), lifted: bool = True) -> Server:
    name = "wsservice" if lifted else "wsservice (default options)"
    return Server(name, ourCommand(python, serverArgs, lifted), r"wsservice starting on '?(\d+)",
                  env={"PYTHONPATH": str(REPO)})


def _reference(name: str, argv: list[str]) -> Server:
    """
    A reference server on a free port, with the backlog our service has.
    """
    return Server(name, [*argv, "--port", "0", "--backlog", str(somaxconn())], r"listening (\d+)")


def nodeBroadcast(node: str) -> Server:
    return _reference("node-ws broadcast", [node, str(SERVERS / "node_broadcast.js")])


def nodeEcho(node: str) -> Server:
    return _reference("node-ws echo", [node, str(SERVERS / "node_echo.js")])


def websocketsEcho(python: str) -> Server:
    return _reference("websockets echo", [python, str(SERVERS / "websockets_echo.py")])


#: How scenario 6 places its processes, printed with its results.
WORKERS_PINNING = (
    "scenario 6 is not CPU-isolated: the supervisor, both workers and redis-server run unpinned "
    f"on every core and share core {LOAD_CORE} with the load generator (pinned there as always), "
    "because two workers pinned to one core would measure one core's worth of work.  Its "
    "deliveries/s and latencies are therefore bounded by the machine, not by the service; "
    "its CPU per delivery (supervisor + workers + redis-server) is the meaningful figure."
)


class WorkerPool(Server):
    """
    Our service as C{--workers N} with its own throwaway redis-server as the
    broker: the supervisor, its workers and Redis together are the server
    under test, none of them pinned (see L{WORKERS_PINNING}).  It is ready
    once every worker has said both C{wsservice ready} and C{connected to
    Redis}, so no client reaches a worker that cannot yet share its room.
    """

    newSession = True
    #: Seconds the supervisor gets to stop its workers (each waits up to
    #: --shutdown-timeout, 5 s by default, for its clients).
    stopGrace = 20

    _shared = re.compile(r"workers share \S+ on port (\d+)")
    _workerLine = re.compile(r"\[worker (\d+) pid \d+\] (.*)")
    _died = re.compile(r"worker \d+ died")
    _opened = re.compile(r"\] open \S+ ")

    def __init__(self, python: str, redis: str, workers: int = 2,
                 serverArgs: Sequence[str] = ()) -> None:
        super().__init__(f"wsservice --workers {workers} + Redis", [], ready="",
                         env={"PYTHONPATH": str(REPO)}, pin=False)
        self.python = python
        self.serverArgs = tuple(serverArgs)
        self.workers = workers
        self.redis = RedisServer(redis, preexec=childSetup(None))
        self.sharedPort: int | None = None
        self.readyWorkers: set[int] = set()
        self.connectedWorkers: set[int] = set()
        self.deaths: list[str] = []
        self.opened: Counter[int] = Counter()

    def start(self, timeout: float = 60) -> "Server":
        try:
            self.redis.start()
        except RuntimeError as e:
            raise BenchError(str(e)) from None
        self.argv = [*ourCommand(self.python, self.serverArgs), "--workers", str(self.workers),
                     "--broker", self.redis.url]
        return super().start(timeout)

    def _watch(self, line: str) -> None:
        worker = self._workerLine.search(line)
        if worker:
            index, text = int(worker.group(1)), worker.group(2)
            if self._opened.search(text):
                self.opened[index] += 1
            elif "wsservice ready" in text:
                self.readyWorkers.add(index)
            elif "connected to Redis" in text:
                self.connectedWorkers.add(index)
        elif self._died.search(line):
            self.deaths.append(line.strip())
        elif self.sharedPort is None and (shared := self._shared.search(line)):
            self.sharedPort = int(shared.group(1))
        everyone = set(range(self.workers))
        if (self.port is None and self.sharedPort is not None
                and everyone <= self.readyWorkers and everyone <= self.connectedWorkers):
            self.port = self.sharedPort
            self._portSeen.set()

    def alive(self) -> bool:
        return super().alive() and self.redis.alive() and not self.deaths

    def failure(self) -> str:
        if not super().alive():
            return super().failure()
        if not self.redis.alive():
            return "redis-server exited: " + " | ".join(self.redis.lines[-5:])
        return "; ".join(self.deaths)

    def processes(self) -> dict[str, list[int]]:
        return {"supervisor": [self.pid], "workers": descendants(self.pid),
                "redis": [self.redis.pid]}

    def summary(self) -> dict[str, Any]:
        return {"clients_per_worker": {str(i): self.opened[i] for i in range(self.workers)},
                "worker_deaths": list(self.deaths)}

    def stop(self) -> None:
        try:
            self._stopSupervisor()
        finally:
            self.redis.stop()

    def _stopSupervisor(self) -> None:
        """
        SIGTERM the supervisor, which stops its workers and waits for them;
        whatever is left of its process group afterwards (all of it, if the
        supervisor did not exit in time) is killed.
        """
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(self.stopGrace)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except OSError:
            pass  # the group is empty: everyone exited
        self.proc.wait(10)


def oneSided(spread: dict[str, int] | None) -> bool:
    """
    Whether some workers got clients and some none (C{spread} is
    C{clients_per_worker}; all zero means the connection log is off and
    nobody knows).
    """
    counts = list((spread or {}).values())
    return any(counts) and not all(counts)
