"""
The fixtures every tier shares: the real service on loopback, started
per test (L{serviceFactory}) or once per module (L{service}), a real
C{redis-server} (L{redisServer}), and a master, replica and three
sentinels (L{sentinelGroup}).
"""

from __future__ import annotations

import signal

import pytest

from tests.support.processes import RedisServer, SentinelGroup, ServiceProcess
from tests.support.tools import requireTool


@pytest.fixture
def serviceFactory():
    """
    Start services on loopback with C{serviceFactory(*args, port=0)}; all
    are killed after the test.
    """
    started: list[ServiceProcess] = []

    def start(*args: str, **kw) -> ServiceProcess:
        service = ServiceProcess.onLoopback(*args, **kw)
        started.append(service)
        return service.start()

    yield start
    for service in started:
        service.stop(signal.SIGKILL)


@pytest.fixture(scope="module")
def service(request):
    """
    One service shared by a module's tests, started with the module's
    C{SERVICE_ARGS} (default options without it).
    """
    proc = ServiceProcess.onLoopback(*getattr(request.module, "SERVICE_ARGS", ())).start()
    yield proc
    proc.stop()


@pytest.fixture
def redisServer():
    """
    A fresh redis-server for one test, killed afterwards.
    """
    requireTool("redis-cli")
    server = RedisServer(requireTool("redis-server")).start()
    yield server
    server.kill()


@pytest.fixture
def sentinelGroup(tmp_path):
    """
    A master, one replica and three sentinels ready to fail over (see
    L{SentinelGroup}), all killed afterwards.
    """
    requireTool("redis-cli")
    group = SentinelGroup(requireTool("redis-server"), requireTool("redis-sentinel"), tmp_path)
    try:
        yield group.start()
    finally:
        group.kill()
