"""
The soak (C{bench/soak.py}, C{make soak}) for one minute: mixed chat, echo
and clock load with connection churn against the real service ends with no
error of any kind and no memory growth after warm-up, and prints what it
measured.  C{tests/unit/test_soak.py} shows that its checks can fail.
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.support.processes import REPO

pytestmark = pytest.mark.slow


def test_one_minute_soak_passes_and_prints_the_series():
    """
    A one-minute soak of a healthy service passes, and prints its RSS series,
    the error counts, the latencies and the memory verdict.
    """
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "soak.py"), "--minutes", "1"],
        cwd=str(REPO), capture_output=True, text=True, timeout=300,
    )
    out = done.stdout
    assert done.returncode == 0, f"exit {done.returncode}\n{out}\n{done.stderr}"
    assert "soak passed" in out and "errors: none" in out, out
    series = re.search(r"^RSS MiB every 1 s \((\d+) samples.*\): ([\d. ]+)$", out, re.M)
    assert series, out
    assert int(series.group(1)) >= 55 and len(series.group(2).split()) == int(series.group(1))
    assert re.search(r"^chat delivery: p50 [\d.]+ ms, p99 [\d.]+ ms", out, re.M), out
    assert re.search(r"^echo round trip: p50 [\d.]+ ms, p99 [\d.]+ ms", out, re.M), out
    assert re.search(r"^memory: baseline .* growth [-+][\d.]+ MiB", out, re.M), out
    counts = dict(re.findall(r"(reconnects|chat recovered|clock ticks) (\d+)", out))
    assert all(int(counts.get(k, 0)) > 0 for k in ("reconnects", "chat recovered", "clock ticks")), out
