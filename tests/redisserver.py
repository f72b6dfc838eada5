"""
A real C{redis-server} in a child process for the scaling-out tests: on a
free loopback port, without persistence, killed and restarted on purpose.
"""

from __future__ import annotations

import socket
import subprocess
import threading

import pytest

from tests.support import requireTool


def freePort() -> int:
    """
    A TCP port nobody listens on right now (redis-server has no --port 0).
    """
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    """
    One C{redis-server} on 127.0.0.1; L{restart} keeps the port.
    """

    def __init__(self, binary: str) -> None:
        self.binary = binary
        self.port = freePort()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10) -> "RedisServer":
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--protected-mode", "no", "--loglevel", "notice"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
        ready = threading.Event()
        seen: list[str] = []
        threading.Thread(target=self._pump, args=(self.proc, ready, seen), daemon=True).start()
        # Waits for the server's own "ready" line (or its exit), not for time.
        if not ready.wait(timeout) or self.proc.poll() is not None:
            self.kill()
            raise RuntimeError("redis-server did not start:\n" + "".join(seen))
        return self

    @staticmethod
    def _pump(proc: subprocess.Popen[bytes], ready: threading.Event, seen: list[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            seen.append(line.decode(errors="replace"))
            if b"Ready to accept connections" in line:
                ready.set()
        ready.set()

    def kill(self) -> None:
        """
        SIGKILL: the server vanishes with everything it held.
        """
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def restart(self) -> None:
        self.kill()
        self.start()

    def command(self, *args: str) -> str:
        """
        Run one command with C{redis-cli} (the tests' view of Redis; the
        service uses txredisapi) and return its raw output.
        """
        cli = requireTool("redis-cli")
        result = subprocess.run([cli, "-p", str(self.port), "--raw", *args],
                                capture_output=True, text=True, timeout=10, check=True)
        return result.stdout.strip()


@pytest.fixture
def redisServer():
    """
    A fresh redis-server for one test, killed afterwards.
    """
    server = RedisServer(requireTool("redis-server")).start()
    yield server
    server.kill()
