"""
Helpers shared by the tests: the real service in a child process, and
tools that are required under CI.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
#: The twistd command of the interpreter running the tests.
TWISTD = [sys.executable, "-c", "from twisted.scripts.twistd import run; run()"]
LISTENING = re.compile(r"wsservice (?:\(TLS\) )?starting on (\S+)")


def requireTool(name: str, path: str | None = None) -> str:
    """
    The path of an external program the test needs: a missing one skips the
    test on a developer's machine and fails it under C{CI=true}.
    """
    found = shutil.which(path or name)
    if found is None:
        message = f"{name} is not installed (.ci/run installs it)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return found


class ServiceProcess:
    """
    C{twistd -n wsservice} in a child process, with this checkout first on
    the Python path.  Its log is kept in L{lines}; L{ports} are read from it.
    """

    def __init__(self, *args: str, env: dict[str, str] | None = None,
                 pythonpath: list[str] | None = None, cwd: str | None = None) -> None:
        self.args = list(args)
        self.extraEnv = env or {}
        self.pythonpath = [*(pythonpath or []), str(REPO)]
        self.cwd = cwd
        self.proc: subprocess.Popen[str] | None = None
        self.lines: list[str] = []
        self.ports: list[str] = []
        self._changed = threading.Condition()
        self._exited = False
        self.ready = False

    @property
    def port(self) -> int:
        return int(self.ports[0])

    def url(self, path: str = "/", scheme: str = "ws") -> str:
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    def command(self) -> list[str]:
        return [*TWISTD, "-n", "--pidfile=", "wsservice", *self.args]

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


@pytest.fixture
def serviceFactory():
    """
    Start services with C{serviceFactory(*args)}; all are stopped after the
    test.
    """
    started: list[ServiceProcess] = []

    def start(*args: str, **kw) -> ServiceProcess:
        service = ServiceProcess("--port", "0", "--interface", "127.0.0.1", *args, **kw)
        started.append(service)
        return service.start()

    yield start
    for service in started:
        service.stop(signal.SIGKILL)
