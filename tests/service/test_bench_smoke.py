"""
Smoke test of the benchmark harness: C{bench/run.py --quick} runs every
scenario against our service and the reference Node C{ws} servers with tiny
client counts and prints the comparison table without errors.

It needs C{node} and C{npm} (the harness installs C{ws} into
C{bench/node_modules} itself): skipped with a reason on a developer machine
without them, failed under C{CI=true}.  Scenario 6 (C{--workers 2} with
Redis) needs C{redis-server}; without it the harness reports the scenario
skipped, and so does this test expect.
"""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from tests.support.processes import REPO
from tests.support.tools import requireTool

pytestmark = pytest.mark.slow


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def test_quick_bench_prints_both_servers(tmp_path):
    """
    The quick run measures every scenario on our service and on Node
    (scenario 6 on our two workers, beside Node's scenario 1) without errors.
    """
    requireTool("node")
    requireTool("npm")
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "run.py"), "--quick", "--no-profile",
         "--json", str(tmp_path / "results.json")],
        cwd=str(REPO), capture_output=True, text=True, timeout=600,
    )
    out = done.stdout
    assert done.returncode == 0, f"exit {done.returncode}\n{out}\n{done.stderr}"
    assert "Errors: none" in out, out
    lines = out.splitlines()
    header = next(line for line in lines if line.startswith("| Scenario / metric"))
    assert _cells(header)[1:3] == ["wsservice", "Node ws"]
    # Every measured scenario has a figure for both servers.
    for prefix in ("1 fan-out", "2 fixed", "3 echo", "4 idle", "5 cost per delivery"):
        rows = [_cells(line) for line in lines if line.startswith(f"| {prefix}")]
        assert rows, f"no {prefix} row:\n{out}"
        first = rows[0]
        assert first[1] not in ("", "-") and first[2] not in ("", "-"), f"{prefix}: {first}"
    assert (tmp_path / "results.json").exists()
    workers = [_cells(line) for line in lines if line.startswith("| 6 ")]
    assert workers, f"no scenario 6 row:\n{out}"
    if shutil.which("redis-server") is None:
        assert workers[0][1].startswith("skipped: "), workers[0]
        return
    # Figures for the workers, and Node's from scenario 1 beside them.
    first = workers[0]
    assert first[1] not in ("", "-") and first[2] not in ("", "-"), f"6: {first}"
    for label in ("6 fan-out: CPU per delivery, supervisor", "6 fan-out: p99 latency",
                  "6 fixed"):
        row = next(r for r in workers if r[0].startswith(label))
        assert row[1] not in ("", "-"), f"{label}: {row}"
