"""
Smoke test of the benchmark harness: C{bench/run.py --quick} runs every
scenario against our service and the reference Node C{ws} servers (or, in
scenarios 10 to 12, against our service in a reference configuration) with
tiny client counts and prints the comparison table without errors, and at
those counts our service loses, repeats and reorders nothing, every
member's count ends right, every token names its user and every member of
a recovery storm gets exactly what it missed.

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
    (scenario 6 on our two workers, beside Node's scenario 1; 10 to 12 on
    our service against itself) without errors.
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
    for prefix in ("1 fan-out", "2 fixed", "3 echo", "4 idle", "5 cost per delivery",
                   "7 one room", "8 echo", "9 reconnect storm"):
        rows = [_cells(line) for line in lines if line.startswith(f"| {prefix}")]
        assert rows, f"no {prefix} row:\n{out}"
        first = rows[0]
        assert first[1] not in ("", "-") and first[2] not in ("", "-"), f"{prefix}: {first}"
    table = [_cells(line) for line in lines if line.startswith("| ")]
    # What is right or wrong, not fast or slow: nothing lost, repeated or out
    # of order, no failed connection, every count right.
    for prefix, words in (("1 fan-out", "lost"), ("2 fixed", "lost"), ("7 one room", "failed"),
                          ("7 one room", "wrong final count"), ("8 echo", "failed"),
                          ("9 storm", "failed"), ("9 storm", "wrong final count")):
        row = next((r for r in table if r[0].startswith(prefix) and words in r[0]), None)
        assert row is not None, f"no {prefix} row with {words!r}:\n{out}"
        assert row[5] == "yes", f"{prefix}: {row}"
    for row in (r for r in table if r[0].startswith("8 echo connections: Python websockets")):
        assert row[1] not in ("", "-"), row
    # Scenarios 10-12 compare our service with itself: a figure in our column.
    for prefix in ("10 tokens", "10 RS256 / no auth", "11 API publish", "12 recovery storm"):
        row = next((r for r in table if r[0].startswith(prefix)), None)
        assert row is not None and row[1] not in ("", "-"), f"{prefix}: {row}\n{out}"
    for prefix in ("10 failed connections", "10 welcomes naming", "11 one process: lost",
                   "11 one process: API calls not answered", "12 storm: recovered exactly",
                   "12 storm: not recovered", "12 storm: newcomers with all"):
        row = next((r for r in table if r[0].startswith(prefix)), None)
        assert row is not None, f"no {prefix} row:\n{out}"
        assert row[5] == "yes", f"{prefix}: {row}"
    assert (tmp_path / "results.json").exists()
    workers = [_cells(line) for line in lines if line.startswith("| 6 ")]
    assert workers, f"no scenario 6 row:\n{out}"
    if shutil.which("redis-server") is None:
        assert workers[0][1].startswith("skipped: "), workers[0]
        return
    for prefix in ("11 2 workers + Redis: lost", "11 2 workers + Redis: API calls not answered",
                   "12 2 workers + Redis, since: recovered exactly"):
        row = next((r for r in table if r[0].startswith(prefix)), None)
        assert row is not None and row[5] == "yes", f"{prefix}: {row}\n{out}"
    # Figures for the workers, and Node's from scenario 1 beside them.
    first = workers[0]
    assert first[1] not in ("", "-") and first[2] not in ("", "-"), f"6: {first}"
    for label in ("6 fan-out: CPU per delivery, supervisor", "6 fan-out: p99 latency",
                  "6 fixed"):
        row = next(r for r in workers if r[0].startswith(label))
        assert row[1] not in ("", "-"), f"{label}: {row}"
