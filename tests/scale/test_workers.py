"""
End-to-end tests of C{twistd wsservice --workers N}: one command, N worker
processes on one port, supervised, sharing rooms through a real Redis.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess

import pytest

from tests.support.processes import REPO, TWISTD, ServiceProcess
from tests.support.wsclient import closeCode, open_, recvJSON, recvUntil

pytestmark = [pytest.mark.redis, pytest.mark.slow]


@pytest.fixture
def workers(redisServer):
    """
    C{--workers 2 --broker ...}, started through the real twistd command,
    with both workers listening and connected to Redis.
    """
    service = ServiceProcess.onLoopback(
        "--workers", "2",
        "--broker", redisServer.url + "?heartbeat=0.5",
    )
    service.start(timeout=30)
    for index in (0, 1):
        service.waitForLog(rf"\[worker {index} pid \d+\] .*wsservice ready", timeout=15)
        service.waitForLog(rf"\[worker {index} pid \d+\] .*connected to Redis", timeout=15)
    yield service
    service.stop(signal.SIGKILL)
    for pid in workerPIDs(service).values():
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def workerPIDs(service) -> dict[int, int]:
    """
    The latest pid the supervisor logged for each worker index.
    """
    pids: dict[int, int] = {}
    for line in service.lines:
        match = re.search(r"started worker (\d+) as pid (\d+)", line)
        if match:
            pids[int(match.group(1))] = int(match.group(2))
    return pids


def servedBy(service, ws) -> int:
    """
    Which worker index accepted the connection C{ws}.
    """
    port = ws.socket.getsockname()[1]
    line = service.waitForLog(rf"open tcp4:127\.0\.0\.1:{port} ")
    return int(re.search(r"\[worker (\d+) ", line).group(1))


def oneOnEach(service, room: str) -> dict[int, object]:
    """
    Chat connections to C{room}, one served by each worker (connections the
    kernel gives to a worker already covered are closed).  Bounded.
    """
    chosen: dict[int, object] = {}
    for attempt in range(50):
        ws = open_(service.url(f"/{room}?name=p{attempt}"), "chat")
        recvUntil(ws, "welcome")
        index = servedBy(service, ws)
        if index in chosen:
            ws.close()
        else:
            chosen[index] = ws
        if len(chosen) == 2:
            return chosen
    raise AssertionError("the kernel never handed a connection to both workers")


def test_workers_without_broker_is_a_usage_error_that_says_why():
    """
    --workers 2 without --broker fails at once, explaining that rooms would
    not be shared.
    """
    result = subprocess.run(
        [*TWISTD, "-n", "--pidfile=", "wsservice", "--port", "0", "--workers", "2"],
        capture_output=True, text=True, timeout=60, cwd=str(REPO),
        env=dict(os.environ, PYTHONPATH=str(REPO)),
    )
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "--workers needs --broker" in output
    assert "would not see each other" in output


def test_two_workers_share_the_port_and_the_rooms(workers):
    """
    Both workers accept connections on the one port, and people in the same
    room on different workers hear each other in one order.
    """
    assert workers.ports[0] == workers.ports[1]
    chosen = oneOnEach(workers, "shared")
    first, second = chosen[0], chosen[1]
    first.send(json.dumps({"message": "from worker 0"}))
    second.send(json.dumps({"message": "from worker 1"}))
    got = [[recvUntil(ws, "message") for _ in range(2)] for ws in (first, second)]
    assert [(m["seq"], m["message"]) for m in got[0]] == [(m["seq"], m["message"]) for m in got[1]]
    for ws in (first, second):
        ws.close()


def test_a_killed_worker_is_restarted_and_logged(workers):
    """
    A worker killed with SIGKILL is logged and replaced; the port keeps
    serving throughout, and the new worker joins the rooms.
    """
    chosen = oneOnEach(workers, "phoenix")
    victim = workerPIDs(workers)[0]
    os.kill(victim, signal.SIGKILL)
    workers.waitForLog(r"worker 0 died .*restarting it")
    assert closeCode(chosen[0])[0] in (None, 1006)
    # The survivor still serves while the replacement starts.
    with open_(workers.url("/phoenix?name=during"), "chat") as ws:
        assert recvJSON(ws)["type"] == "welcome"
    workers.waitFor(lambda: workerPIDs(workers)[0] != victim, 10)
    assert workerPIDs(workers)[0] != victim
    newPID = workerPIDs(workers)[0]
    workers.waitForLog(rf"\[worker 0 pid {newPID}\] .*connected to Redis", timeout=15)
    again = oneOnEach(workers, "phoenix")
    again[0].send(json.dumps({"message": "back"}))
    assert recvUntil(chosen[1], "message")["message"] == "back"
    for ws in (*again.values(), chosen[1]):
        ws.close()


def test_sigterm_reaches_every_worker_and_each_closes_with_1001(workers):
    """
    SIGTERM to the one twistd process closes every client on every worker
    with 1001, and the whole service exits 0.
    """
    chosen = oneOnEach(workers, "bye")
    assert workers.stop(signal.SIGTERM) == 0
    for ws in chosen.values():
        assert closeCode(ws)[0] == 1001
    for index in (0, 1):
        workers.waitForLog(rf"worker {index} exited: .*exit code 0")


def test_workers_shut_down_gracefully_when_their_supervisor_is_killed(workers):
    """
    If the supervising process dies without a chance to stop them, every
    worker notices its closed stdin pipe and closes its clients with 1001
    instead of lingering.
    """
    chosen = oneOnEach(workers, "orphans")
    workers.stop(signal.SIGKILL)
    for ws in chosen.values():
        assert closeCode(ws)[0] == 1001
