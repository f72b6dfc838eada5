"""
The Autobahn Testsuite (the standard WebSocket conformance suite) against
the echo handler of the real service.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support.processes import REPO
from tests.support.tools import requireTool

#: Installs the suite on first use (into ~/.cache), then runs it.
RUNNER = REPO / "tools" / "conformance" / "run.py"


@pytest.mark.slow
def test_autobahn_testsuite_without_compression_has_no_failures(serviceFactory, tmp_path):
    """
    All 301 non-compression cases of the Autobahn Testsuite end with 0 failed.
    """
    # What tools/conformance/install.sh needs to build the suite's Python 2.7.
    for tool in ("apt-get", "dpkg-deb", "gcc"):
        requireTool(tool)
    # Default options, but for cases 9.*, which send messages of up to 16 MiB
    # (and floods of frames, which echo does not rate-limit).
    service = serviceFactory("--max-message-size", str(16 * 1024 * 1024))
    result = subprocess.run(
        [sys.executable, str(RUNNER), "--no-compression", service.url(), str(tmp_path / "report")],
        capture_output=True, text=True, timeout=900, stdin=subprocess.DEVNULL,
    )
    summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else result.stderr
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert summary.startswith("conformance: 301 cases") and summary.endswith(" 0 failed"), summary
