"""
The Autobahn Testsuite (the standard WebSocket conformance suite) against
the echo handler of the real service.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.support.processes import REPO

RUNNER = Path(os.environ.get("WSSERVICE_COMPLIANCE", REPO.parent / "shared" / "tools" / "compliance" / "run.sh"))


@pytest.mark.slow
def test_autobahn_testsuite_without_compression_has_no_failures(serviceFactory, tmp_path):
    """
    All 301 non-compression cases of the Autobahn Testsuite end with 0 failed.
    """
    if not RUNNER.is_file():
        message = f"the compliance runner is missing: {RUNNER}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    # Cases 9.* send messages of up to 16 MiB and floods of frames.
    service = serviceFactory("--max-message-size", str(16 * 1024 * 1024),
                             "--max-messages-per-second", "0", "--default-subprotocol", "echo")
    result = subprocess.run(
        ["bash", str(RUNNER), "-p", "echo", "--no-compression", service.url(), str(tmp_path / "report")],
        capture_output=True, text=True, timeout=900, stdin=subprocess.DEVNULL,
    )
    summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else result.stderr
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert summary.startswith("compliance: 301 cases") and summary.endswith(" 0 failed"), summary
