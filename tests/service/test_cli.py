"""
The command line: help, handler listing, and usage errors that name the
option and start nothing.
"""

from __future__ import annotations

import os
import socket
import subprocess

import pytest

from tests.support.processes import REPO, TWISTD


def twistd(*args: str, pythonpath: list[str] = (), timeout: float = 30) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([*pythonpath, str(REPO)]))
    return subprocess.run(
        [*TWISTD, "-n", "--pidfile=", "wsservice", *args], capture_output=True, text=True,
        env=env, timeout=timeout, stdin=subprocess.DEVNULL, cwd=str(REPO),
    )


def test_help_documents_every_option():
    """
    twistd wsservice --help lists every option the service takes.
    """
    result = twistd("--help")
    assert result.returncode == 0
    for option in ("--port", "--interface", "--listen", "--static", "--default-subprotocol",
                   "--clock-interval", "--history", "--list-handlers", "--max-message-size",
                   "--max-send-buffer", "--max-messages-per-second", "--max-connections",
                   "--ping-interval", "--ping-timeout", "--allowed-origin", "--shutdown-timeout",
                   "--open-handshake-timeout", "--close-handshake-timeout",
                   "--permessage-deflate", "--presence-list", "--presence-interval",
                   "--presence-limit", "--log-connections", "--no-connection-log", "backlog="):
        assert option in result.stdout, option


def test_list_handlers_prints_name_description_and_module():
    """
    --list-handlers prints each subprotocol with its description and module,
    then exits 0.
    """
    result = twistd("--list-handlers")
    assert result.returncode == 0
    lines = dict(line.split("\t", 1) for line in result.stdout.strip().splitlines())
    assert set(lines) == {"chat", "clock", "echo"}
    assert "(wsservice.handlers.echo.EchoHandler)" in lines["echo"]


@pytest.mark.parametrize(
    "args, option",
    [
        (["--port", "99999"], "--port"),
        (["--port", "http"], "--port"),
        (["--default-subprotocol", "mqtt"], "--default-subprotocol"),
        (["--clock-interval", "0"], "--clock-interval"),
        (["--max-message-size", "-5"], "--max-message-size"),
        (["--static", "/no/such/dir"], "--static"),
        (["--listen", "ssl:0:privateKey=/no/key.pem:certKey=/no/cert.pem"], "--listen"),
        (["--listen", "bogus:1234"], "--listen"),
    ],
)
def test_invalid_values_are_usage_errors_naming_the_option(args, option):
    """
    An invalid value exits non-zero with a message naming the option, and
    nothing is started.
    """
    result = twistd(*args)
    assert result.returncode != 0
    last = (result.stdout + result.stderr).strip().splitlines()[-1]
    assert option in last, last
    assert "starting on" not in result.stdout


def test_busy_port_fails_start_up_loudly():
    """
    Starting on a port that is already taken exits non-zero and says why.
    """
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = twistd("--port", str(port), "--interface", "127.0.0.1")
    assert result.returncode != 0
    assert "Address already in use" in result.stdout + result.stderr
