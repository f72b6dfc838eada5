"""
Real processes for the tests and the benchmark: the service (C{twistd
wsservice}), C{redis-server} and C{redis-sentinel}, each in a child process
on loopback, with its output kept and waited on line by line, never on
time.

No pytest here: C{bench/} uses this module too.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parent.parent.parent
#: The twistd command of the interpreter running the tests.
TWISTD = [sys.executable, "-c", "from twisted.scripts.twistd import run; run()"]
#: The arguments that put a service on a free loopback port.
LOOPBACK = ("--port", "0", "--interface", "127.0.0.1")
LISTENING = re.compile(r"wsservice (?:\(TLS\) )?starting on (\S+)")


def freePort() -> int:
    """
    A loopback TCP port nobody listens on right now (for programs that have
    no C{--port 0}, such as redis-server).
    """
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serviceCommand(*args: str, python: str = sys.executable) -> list[str]:
    """
    C{twistd -n wsservice} with C{args} under C{python}: the tests' own
    interpreter, or the one the benchmark is told to measure.
    """
    return [python, *TWISTD[1:], "-n", "--pidfile=", "wsservice", *args]


class ServiceProcess:
    """
    C{twistd -n wsservice} in a child process, with this checkout first on
    the Python path.  Its log is kept in L{lines}; L{ports} are read from it.
    """

    def __init__(self, *args: str, env: dict[str, str] | None = None,
                 pythonpath: list[str] | None = None, cwd: str | None = None,
                 preexec: Callable[[], None] | None = None) -> None:
        self.args = list(args)
        self.extraEnv = env or {}
        self.pythonpath = [*(pythonpath or []), str(REPO)]
        self.cwd = cwd
        self.preexec = preexec
        self.proc: subprocess.Popen[str] | None = None
        self.lines: list[str] = []
        self.ports: list[str] = []
        self._changed = threading.Condition()
        self._exited = False
        self.ready = False

    @classmethod
    def onLoopback(cls, *args: str, port: int = 0, **kw) -> "ServiceProcess":
        """
        A service on loopback, on C{port} (0: a free one), with C{args}
        besides.
        """
        return cls("--port", str(port), "--interface", "127.0.0.1", *args, **kw)

    @property
    def port(self) -> int:
        return int(self.ports[0])

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def url(self, path: str = "/", scheme: str = "ws") -> str:
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    def command(self) -> list[str]:
        return serviceCommand(*self.args)

    def start(self, timeout: float = 20) -> "ServiceProcess":
        env = dict(os.environ, **self.extraEnv)
        env["PYTHONPATH"] = os.pathsep.join(self.pythonpath)
        env["PYTHONUNBUFFERED"] = "1"
        self.lines.clear()
        self.ports.clear()
        self._exited = False
        self.ready = False
        self.proc = subprocess.Popen(
            self.command(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, text=True, env=env, cwd=self.cwd or str(REPO),
            preexec_fn=self.preexec,
        )
        threading.Thread(target=self._pump, args=(self.proc,), daemon=True).start()
        if not self.waitFor(lambda: self.ready, timeout):
            output = self.log()
            self.stop(signal.SIGKILL)
            raise RuntimeError(f"wsservice did not start:\n{output}")
        return self

    def _pump(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                match = LISTENING.search(line)
                if match:
                    self.ports.append(match.group(1).strip("'\""))
                if "wsservice ready:" in line:
                    self.ready = True
                self._changed.notify_all()
        with self._changed:
            self._exited = True
            self._changed.notify_all()

    def waitFor(self, predicate, timeout: float = 10) -> bool:
        """
        Wait until C{predicate()} holds, re-checking on every log line and on
        exit; C{False} if C{timeout} passes or the process ends first.
        """
        with self._changed:
            self._changed.wait_for(lambda: predicate() or self._exited, timeout)
            return bool(predicate())

    def waitForLog(self, pattern: str, timeout: float = 10) -> str:
        """
        Wait for a log line matching C{pattern} and return it.
        """
        regex = re.compile(pattern)
        found: list[str] = []

        def seen() -> bool:
            found[:] = [line for line in self.lines if regex.search(line)]
            return bool(found)

        if not self.waitFor(seen, timeout):
            raise AssertionError(f"no log line matching {pattern!r}:\n{self.log()}")
        return found[0]

    def log(self) -> str:
        return "\n".join(self.lines)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> int | None:
        """
        Send C{sig} and wait for the process to exit; return its exit code.
        """
        proc, code = self.proc, None
        if proc is not None:
            if proc.poll() is None:
                proc.send_signal(sig)
            try:
                code = proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                code = proc.wait()
        return code


class _RedisProcess:
    """
    One throwaway C{redis-server} or C{redis-sentinel} on 127.0.0.1, on a
    free port, with its log kept and waited on line by line.
    """

    #: The log line that says it serves.
    READY = "Ready to accept connections"

    def __init__(self, binary: str, preexec: Callable[[], None] | None = None) -> None:
        self.binary = binary
        self.preexec = preexec
        self.port = freePort()
        self.proc: subprocess.Popen[str] | None = None
        self.lines: list[str] = []
        self._changed = threading.Condition()

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def arguments(self) -> list[str]:
        raise NotImplementedError

    def start(self, timeout: float = 10) -> "_RedisProcess":
        self.lines = []
        self.proc = subprocess.Popen(
            [self.binary, *self.arguments()],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True,
            preexec_fn=self.preexec,
        )
        threading.Thread(target=self._pump, args=(self.proc,), daemon=True).start()
        # Its own ready line (or its exit), not time.
        if not self.waitFor(lambda: any(self.READY in line for line in self.lines), timeout):
            self.kill()
            raise RuntimeError(f"{self.binary} did not start:\n" + "\n".join(self.lines[-30:]))
        return self

    def _pump(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            with self._changed:
                if len(self.lines) < 2000:
                    self.lines.append(line.rstrip())
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def waitFor(self, predicate: Callable[[], bool], timeout: float = 10) -> bool:
        """
        Wait until C{predicate()} holds, re-checking on every log line and on
        exit; C{False} if C{timeout} passes or the process ends first.
        """
        with self._changed:
            self._changed.wait_for(lambda: predicate() or not self.alive(), timeout)
            return bool(predicate())

    def waitForLog(self, pattern: str, count: int = 1, timeout: float = 10) -> list[str]:
        """
        Wait for C{count} log lines matching C{pattern}; return them.
        """
        regex = re.compile(pattern)

        def found() -> list[str]:
            return [line for line in self.lines if regex.search(line)]

        if not self.waitFor(lambda: len(found()) >= count, timeout):
            raise AssertionError(f"{self.binary} on port {self.port} logged fewer than {count} "
                                 f"lines matching {pattern!r}:\n" + "\n".join(self.lines[-40:]))
        return found()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """
        SIGKILL: the server vanishes with everything it held.
        """
        if self.alive():
            assert self.proc is not None
            self.proc.kill()
            self.proc.wait(10)

    def stop(self) -> None:
        """
        SIGTERM, then SIGKILL if it does not exit in time.
        """
        if self.alive():
            assert self.proc is not None
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()

    def restart(self) -> None:
        self.kill()
        self.start()

    def command(self, *args: str) -> str:
        """
        Run one command with C{redis-cli} (the tests' view of Redis; the
        service uses txredisapi) and return its raw output.
        """
        cli = shutil.which("redis-cli")
        if cli is None:
            raise RuntimeError("redis-cli is not installed")
        result = subprocess.run([cli, "-p", str(self.port), "--raw", *args],
                                capture_output=True, text=True, timeout=10, check=True)
        return result.stdout.strip()


class RedisServer(_RedisProcess):
    """
    One throwaway C{redis-server} on 127.0.0.1: a free port, no persistence.
    L{restart} keeps the port; L{kill} makes it vanish with all it held.
    With C{replicaOf} (a port), a replica of the server there, which loads
    what the master sends without writing it to disk; C{directory} is its
    working directory (where Redis would look for a dump to load).
    """

    def __init__(self, binary: str, preexec: Callable[[], None] | None = None,
                 replicaOf: int | None = None, directory: Path | None = None) -> None:
        super().__init__(binary, preexec)
        self.replicaOf = replicaOf
        self.directory = directory

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def arguments(self) -> list[str]:
        extra = []
        if self.replicaOf:
            extra += ["--replicaof", "127.0.0.1", str(self.replicaOf),
                      "--repl-diskless-load", "on-empty-db"]
        if self.directory is not None:
            self.directory.mkdir(parents=True, exist_ok=True)
            extra += ["--dir", str(self.directory)]
        # A replica is sent the data at once, not after the default 5 s
        # wait for more replicas.
        return ["--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--protected-mode", "no", "--loglevel", "notice",
                "--repl-diskless-sync-delay", "0", *extra]


class SentinelServer(_RedisProcess):
    """
    One throwaway C{redis-sentinel} on 127.0.0.1 watching one master, with
    its own config file in C{directory} (a sentinel rewrites it), quick to
    call the master down (C{downAfter} milliseconds) and to fail over.
    """

    READY = "+monitor master"

    def __init__(self, binary: str, directory: Path, master: str, masterPort: int,
                 quorum: int = 2, downAfter: int = 1000, failoverTimeout: int = 5000) -> None:
        super().__init__(binary)
        self.config = Path(directory) / f"sentinel-{self.port}.conf"
        self.config.write_text(
            f"port {self.port}\n"
            "bind 127.0.0.1\n"
            "protected-mode no\n"
            f"dir {directory}\n"
            f"sentinel monitor {master} 127.0.0.1 {masterPort} {quorum}\n"
            f"sentinel down-after-milliseconds {master} {downAfter}\n"
            f"sentinel failover-timeout {master} {failoverTimeout}\n"
        )

    def arguments(self) -> list[str]:
        return [str(self.config)]


class SentinelGroup:
    """
    A master, one replica of it and three sentinels watching it as
    C{name}, all throwaway processes on loopback; L{url} is the
    C{--broker} URL of the master through the sentinels.
    """

    def __init__(self, redisBinary: str, sentinelBinary: str, directory: Path,
                 name: str = "M") -> None:
        self.name = name
        directory = Path(directory)
        self.master = RedisServer(redisBinary, directory=directory / "master")
        self.replica = RedisServer(redisBinary, replicaOf=self.master.port,
                                   directory=directory / "replica")
        self._sentinel = (sentinelBinary, Path(directory))
        self.sentinels: list[SentinelServer] = []

    def url(self, query: str = "") -> str:
        where = ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)
        return f"redis+sentinel://{where}/{self.name}" + (f"?{query}" if query else "")

    def start(self, timeout: float = 20) -> "SentinelGroup":
        """
        Start them all and wait until each sentinel knows the replica and
        the two other sentinels, so that the group can fail over.
        """
        self.master.start()
        self.replica.start()
        # Synced first, so the master lists it in the sentinels' first INFO.
        self.replica.waitForLog(r"MASTER <-> REPLICA sync: Finished with success")
        binary, directory = self._sentinel
        self.sentinels = [SentinelServer(binary, directory, self.name, self.master.port)
                          for _ in range(3)]
        for sentinel in self.sentinels:
            sentinel.start()
        for sentinel in self.sentinels:
            sentinel.waitForLog(rf"\+slave slave 127\.0\.0\.1:{self.replica.port} ",
                                timeout=timeout)
            sentinel.waitForLog(r"\+sentinel sentinel ", count=2, timeout=timeout)
        return self

    def waitForSwitch(self, timeout: float = 20) -> None:
        """
        Wait until every sentinel says the replica is the master now.
        """
        for sentinel in self.sentinels:
            sentinel.waitForLog(rf"\+switch-master {self.name} .* {self.replica.port}$",
                                timeout=timeout)

    def kill(self) -> None:
        for process in (*self.sentinels, self.replica, self.master):
            process.kill()
