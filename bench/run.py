#!/usr/bin/env python3
"""
Benchmark wsservice against the reference Node C{ws} servers, in one run.

    python bench/run.py            # the full run (~6-8 minutes)
    python bench/run.py --quick    # tiny client counts, ~1 minute (the smoke test)

Installs C{ws} from npm into C{bench/node_modules} (quietly, only when
missing), starts each server (but scenario 6's) pinned to core 0 and the
Node load generator (C{bench/loadgen.js}) pinned to core 1, measures the
server's CPU from C{/proc/<pid>/stat} (utime+stime) and its memory from
C{VmRSS}, and prints a table of absolute figures and ratios (ours /
reference).  The raw figures go to C{bench/results-<time>.json}
(git-ignored).

Scenarios: 1) chat fan-out at the rate the server sustains; 2) the same at a
fixed 50 msg/s; 3) echo round trips (Node C{ws} and Python C{websockets} as
references); 4) idle connections: handshakes/s and memory per connection;
5) cost per delivery against room size; 6) 1 and 2 again against
C{--workers 2} sharing the room through a throwaway redis-server, compared
with one process (not CPU-isolated: see L{bench.targets.WORKERS_PINNING};
skipped without redis-server); 7) 10,000 clients into one chat room and
8) 10,000 echo connections, as fast as the server takes them; 9) a
reconnect storm of one room's 5,000 members; 10) 10,000 handshakes with a
signed token each, HS256 and RS256 against no auth; 11) the backend API
publishing into a room of 100 members, one process and C{--workers 2} with
Redis; 12) scenario 9's storm with messages published while the members
are away, recovered with C{?since=}, against coming back as newcomers.
Scenarios 10-12 compare our service with itself in the same run.
C{--profile} (on by default
in the full run when py-spy is installed) re-runs 1, 3 and a handshake
burst on our server under C{py-spy record} and prints the hottest
functions.

This file is the command line only: C{procs} reads C{/proc} and pins
processes, C{targets} starts the servers under test, C{loadrun} drives
C{loadgen.js}, C{scenarios} holds the plans and the scenarios, and
C{report} prints the table.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))

from bench.loadrun import ensureWs  # noqa: E402
from bench.procs import LOAD_CORE, SERVER_CORE, BenchError, usableCores  # noqa: E402
from bench.report import resultsText, writeResults  # noqa: E402
from bench.scenarios import FULL, QUICK, Bench, findPySpy  # noqa: E402
from tests.support.processes import REPO  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny client counts, ~1 minute")
    parser.add_argument("--profile", dest="profile", action="store_true", default=None,
                        help="also profile our server with py-spy (default: on in full runs)")
    parser.add_argument("--no-profile", dest="profile", action="store_false")
    parser.add_argument("--python", default=sys.executable,
                        help="interpreter for wsservice and the websockets reference")
    parser.add_argument("--json", type=Path, default=None, help="where to write the raw figures")
    parser.add_argument("--scenarios", default="1,2,3,4,5,6,7,8,9,10,11,12",
                        help="comma-separated scenario numbers to run (default: all)")
    parser.add_argument("--server-arg", action="append", default=[], metavar="ARG",
                        help="extra option for our service (repeatable), e.g. "
                             "--server-arg=--no-connection-log")
    args = parser.parse_args(argv)

    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        print("bench: node and npm are required", file=sys.stderr)
        return 2
    log = lambda s: print(s, flush=True)  # noqa: E731
    started = time.monotonic()
    ensureWs(npm)
    cores = usableCores()
    if len(cores) < 2 or not {SERVER_CORE, LOAD_CORE} <= cores:
        log(f"warning: cores {sorted(cores)} available; server and load are not on separate cores")
    kind = "quick" if args.quick else "full"
    bench = Bench(QUICK if args.quick else FULL, args.python, node, log,
                  serverArgs=args.server_arg)
    version = subprocess.run([node, "--version"], capture_output=True, text=True).stdout.strip()
    log(f"bench: {kind} run, server on core {SERVER_CORE}, load generator on core {LOAD_CORE}, "
        f"node {version}")
    if args.server_arg:
        log(f"our service gets extra options: {' '.join(args.server_arg)}")
    try:
        bench.runAll({int(x) for x in args.scenarios.split(",") if x.strip()})
    except BenchError as e:
        bench.errors.append(str(e))
    profiles: dict[str, Any] = {}
    doProfile = (not args.quick) if args.profile is None else args.profile
    if doProfile:
        pyspy = findPySpy(args.python)
        if pyspy is None:
            log("profile: py-spy not installed (pip install py-spy); skipped")
        else:
            try:
                profiles = bench.profile(pyspy, REPO / "artifacts" / "bench")
            except BenchError as e:
                bench.notes.append(f"profiling failed: {e}")
    elapsed = time.monotonic() - started
    print("\n".join(resultsText(bench, profiles, kind, elapsed)), flush=True)
    out = args.json or BENCH / f"results-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json"
    writeResults(out, bench, profiles, elapsed)
    return 1 if bench.errors else 0


if __name__ == "__main__":
    sys.exit(main())
