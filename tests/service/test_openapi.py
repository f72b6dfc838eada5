"""
The backend API against its own OpenAPI document: schemathesis generates
requests from /api/openapi.json, valid and invalid, sends them to the
running service and checks every answer against the document (status,
content type, headers, schema), that no request is a server error, that
valid ones are accepted, invalid ones refused and the key always required.

The run is bounded (examples per operation and seconds) and seeded, so the
suite is reproducible; WSSERVICE_API_FUZZ_SEED and WSSERVICE_API_FUZZ_TIME
run it longer or with another seed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.api import KEY, keyFile
from tests.support.tools import requireTool


def schemathesis(base: str) -> subprocess.CompletedProcess[str]:
    binary = requireTool("schemathesis", str(Path(sys.executable).parent / "schemathesis"))
    seconds = os.environ.get("WSSERVICE_API_FUZZ_TIME", "45")
    return subprocess.run(
        [binary, "run", f"{base}/api/openapi.json", "-H", f"Authorization: Bearer {KEY}",
         "--checks", "all", "--max-examples", "40", "--max-time", seconds,
         "--seed", os.environ.get("WSSERVICE_API_FUZZ_SEED", "1"), "--no-shrink",
         "--request-timeout", "10"],
        capture_output=True, text=True, timeout=int(seconds) + 120,
        env=dict(os.environ, NO_COLOR="1", SCHEMATHESIS_HOOKS=""))


def assertConforms(base: str) -> None:
    done = schemathesis(base)
    assert done.returncode == 0, done.stdout[-8000:] + done.stderr[-2000:]
    assert "generated" in done.stdout, done.stdout[-2000:]


def test_the_api_conforms_to_its_document(serviceFactory, tmp_path):
    """
    On the in-process rooms.
    """
    service = serviceFactory("--api-key-file", keyFile(tmp_path), "--no-connection-log")
    assertConforms(service.url("", scheme="http"))
    assert service.alive()


@pytest.mark.redis
def test_the_api_conforms_to_its_document_with_a_broker(serviceFactory, redisServer, tmp_path):
    """
    On rooms in Redis, whose listings, pages and history are Lua scripts.
    """
    service = serviceFactory("--api-key-file", keyFile(tmp_path), "--no-connection-log",
                             "--broker", redisServer.url)
    service.waitForLog(r"connected to Redis at")
    assertConforms(service.url("", scheme="http"))
    assert service.alive()
