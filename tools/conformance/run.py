#!/usr/bin/env python3
"""
Run the Autobahn Testsuite (wstest -m fuzzingclient) against a WebSocket
server listening on loopback, and summarise its report.

    tools/conformance/run.py [--no-compression] [--cases PATTERNS]
                             [--protocol NAME] [--timeout SECONDS] URL REPORT_DIR

The suite is installed first, once, by install.sh beside this file (see
README.md there for why it needs a Python 2.7 of its own).  REPORT_DIR gets
the suite's report (index.html, index.json, one file per case), the spec
given to wstest and wstest's output (wstest.log).

The last line printed is the summary:

    conformance: 301 cases, 298 ok, 0 non-strict, 3 informational, 0 unimplemented, 0 failed

Exit status: 0 when every requested case ran and none failed, 1 when some
failed or did not run, 2 when the suite could not be run at all.
"""

from __future__ import annotations

import argparse
import ast
import ipaddress
import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from urllib.parse import urlsplit

HERE = Path(__file__).resolve().parent
#: How a case's "behavior" in the report is counted; anything else is a failure.
PASSING = {"OK": "ok", "NON-STRICT": "non-strict", "INFORMATIONAL": "informational",
           "UNIMPLEMENTED": "unimplemented"}
#: The permessage-deflate cases: UNIMPLEMENTED unless the server accepts the
#: extension, and most of a full run's time when it does.
COMPRESSION_CASES = ["12.*", "13.*"]


class NotRun(Exception):
    pass


def checkURL(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme != "ws" or not parts.hostname:
        raise NotRun(f"not a ws:// URL: {url}")
    try:
        loopback = parts.hostname == "localhost" or ipaddress.ip_address(parts.hostname).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise NotRun(f"only servers on loopback are tested, not {parts.hostname}")


def install() -> str:
    """
    Install the suite if needed and return the path of its wstest.
    """
    env = dict(os.environ, PYTHON3=os.environ.get("PYTHON3", sys.executable))
    result = subprocess.run(["bash", str(HERE / "install.sh")], env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, text=True)
    if result.returncode != 0:
        raise NotRun("installing the Autobahn Testsuite failed")
    return result.stdout.strip().splitlines()[-1]


def runSuite(wstest: str, spec: dict, report: Path, timeout: float) -> list[str]:
    """
    Run wstest with C{spec}, its output going to report/wstest.log, and return
    the ids of the cases it was asked to run.
    """
    (report / "spec.json").write_text(json.dumps(spec, indent=2) + "\n")
    requested: list[str] = []
    proc = subprocess.Popen([wstest, "-m", "fuzzingclient", "-s", "spec.json"], cwd=report,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    timedOut = threading.Event()
    timer = threading.Timer(timeout, lambda: (timedOut.set(), proc.kill()))
    timer.start()
    try:
        with open(report / "wstest.log", "w") as log:
            for line in proc.stdout:
                log.write(line)
                if line.startswith("Connection to "):
                    print(line, end="")  # the server is not there
                if line.startswith("Cases = "):
                    requested = ast.literal_eval(line[len("Cases = "):])
                    if not requested:
                        proc.kill()  # wstest waits forever when no case matches
    finally:
        proc.wait()
        timer.cancel()
    if timedOut.is_set():
        print(f"wstest stopped after {timeout:g} s (it writes its report only at the end)")
    if not requested:
        raise NotRun(f"wstest ran no case (see {report / 'wstest.log'})")
    elif proc.returncode != 0:
        print(f"wstest exited with {proc.returncode} (see {report / 'wstest.log'})")
    return requested


def summarise(report: Path, requested: list[str]) -> dict[str, int]:
    """
    Count the report's cases by their behaviour, print the failing ones, and
    count requested cases that are not in the report (a run that timed out,
    a server that went away) as failed.
    """
    try:
        cases = json.loads((report / "index.json").read_text()).get("wsservice", {})
    except (OSError, ValueError) as e:
        print(f"no report: {e}")
        cases = {}
    counts = dict.fromkeys([*PASSING.values(), "failed"], 0)
    for case in requested:
        behavior = cases.get(case, {}).get("behavior")
        bucket = PASSING.get(behavior, "failed")
        counts[bucket] += 1
        if bucket == "failed" and behavior:
            print(f"case {case}: {behavior}")
    missing = [case for case in requested if case not in cases]
    if missing:
        print(f"{len(missing)} of the {len(requested)} cases did not run, from {missing[0]} on"
              f" (see {report / 'wstest.log'})")
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the Autobahn Testsuite against a WebSocket server on loopback.")
    parser.add_argument("url", help="ws:// URL of the server under test, on loopback")
    parser.add_argument("report", type=Path, help="directory for the report")
    parser.add_argument("--no-compression", action="store_true",
                        help="leave out the permessage-deflate cases " + " and ".join(COMPRESSION_CASES))
    parser.add_argument("--cases", default="*", help="comma-separated case patterns (default: all)")
    parser.add_argument("--protocol", default="echo", help="subprotocol to ask for (default: echo)")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds for the whole run (default: 1800)")
    args = parser.parse_args(argv)
    try:
        checkURL(args.url)
        wstest = install()
        report = args.report.resolve()
        report.mkdir(parents=True, exist_ok=True)
        for old in [*report.glob("*_case_*.*"), report / "index.json", report / "index.html"]:
            old.unlink(missing_ok=True)  # wstest only adds files
        spec = {
            "outdir": str(report),
            "servers": [{"agent": "wsservice", "url": args.url, "protocols": [args.protocol]}],
            "cases": args.cases.split(","),
            "exclude-cases": COMPRESSION_CASES if args.no_compression else [],
        }
        requested = runSuite(wstest, spec, report, args.timeout)
    except NotRun as e:
        print(f"conformance: not run: {e}")
        return 2
    counts = summarise(report, requested)
    print(f"report: {report / 'index.html'}")
    print(f"conformance: {len(requested)} cases, " + ", ".join(f"{n} {name}" for name, n in counts.items()))
    return 0 if counts["failed"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
