"""
Real processes for the tests and the benchmark: the service (C{twistd
wsservice}) and C{redis-server}, each in a child process on loopback, with
its output kept and waited on line by line, never on time.

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


class RedisServer:
    """
    One throwaway C{redis-server} on 127.0.0.1: a free port, no persistence.
    L{restart} keeps the port; L{kill} makes it vanish with all it held.
    """

    def __init__(self, binary: str, preexec: Callable[[], None] | None = None) -> None:
        self.binary = binary
        self.preexec = preexec
        self.port = freePort()
        self.proc: subprocess.Popen[str] | None = None
        self.lines: list[str] = []

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, timeout: float = 10) -> "RedisServer":
        self.lines = []
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--protected-mode", "no", "--loglevel", "notice"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True,
            preexec_fn=self.preexec,
        )
        ready = threading.Event()
        threading.Thread(target=self._pump, args=(self.proc, ready), daemon=True).start()
        # Its own "Ready to accept connections" line (or its exit), not time.
        if not ready.wait(timeout) or not self.alive():
            self.kill()
            raise RuntimeError("redis-server did not start:\n" + "\n".join(self.lines[-30:]))
        return self

    def _pump(self, proc: subprocess.Popen[str], ready: threading.Event) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if len(self.lines) < 200:
                self.lines.append(line.rstrip())
            if "Ready to accept connections" in line:
                ready.set()
        ready.set()

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
