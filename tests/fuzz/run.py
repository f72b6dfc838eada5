"""
Run fuzz targets for a bounded time, each in its own process, and report
what they found: the crashing input (raw and as the target reads it) and
the traceback.  C{make fuzz} and C{tests/fuzz/test_fuzzers.py} use it.

    PYTHONPATH=. python -m tests.fuzz.run --seconds 60            # every target
    PYTHONPATH=. python -m tests.fuzz.run --seconds 20 chat clock

Each target reads its committed seeds (C{tests/fuzz/seeds/TARGET}) and
grows its corpus in C{tests/fuzz/corpus/TARGET} (git-ignored); crashing
inputs and logs go to C{artifacts/fuzz/TARGET/}.  Exit status 1 when any
target found something.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
TARGETS = ("chat", "clock", "frontdoor", "broker")
#: Longest input per target: the front door needs room for heads over 16 KiB.
MAX_LEN = {"chat": 4096, "clock": 4096, "frontdoor": 20_000, "broker": 4096}
#: Inputs per target in the short run of C{make test}: 3 to 5 s each on a quiet
#: machine.
SHORT_RUNS = {"chat": 5000, "clock": 25_000, "frontdoor": 40_000, "broker": 8000}
ARTIFACTS = ROOT / "artifacts" / "fuzz"
CORPUS = HERE / "corpus"


@dataclass
class Result:
    """
    How one run of one target ended.
    """

    target: str
    seconds: float
    runs: int | None
    returncode: int
    log: Path
    artifact: Path | None
    failure: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and self.artifact is None

    def summary(self) -> str:
        runs = f"{self.runs} runs" if self.runs is not None else "runs unknown"
        state = "ok" if self.ok else "FOUND A FAILURE"
        return f"fuzz {self.target}: {state}, {runs} in {self.seconds:.1f} s (log {self.log})"

    def report(self) -> str:
        """
        Everything needed to turn the finding into a regression test.
        """
        if self.ok:
            return self.summary()
        lines = [self.summary()]
        if self.artifact is not None:
            data = self.artifact.read_bytes()
            shown = data if len(data) <= 2000 else data[:1000] + b"..." + data[-1000:]
            lines += [
                f"crashing input: {self.artifact} ({len(data)} bytes)",
                f"  {shown!r}",
                "as the target reads it:",
                describe(self.target, self.artifact),
                "replay it with:",
                f"  PYTHONPATH=. {Path(sys.executable).name} {target(self.target).relative_to(ROOT)}"
                f" {self.artifact}",
            ]
        lines += ["what the target said:", self.failure or "(nothing: see the log)"]
        return "\n".join(lines)


def target(name: str) -> Path:
    return HERE / f"fuzz_{name}.py"


def environment() -> dict[str, str]:
    """
    The targets' environment: this tree first on the path, and string
    hashes fixed, so an input does the same on every run and replay.
    """
    env = dict(os.environ)
    env["PYTHONHASHSEED"] = "0"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def describe(name: str, path: Path) -> str:
    out = subprocess.run([sys.executable, str(target(name)), "--describe", str(path)],
                         cwd=ROOT, env=environment(), capture_output=True, text=True,
                         errors="replace", timeout=60)
    return "\n".join("  " + line for line in out.stdout.splitlines()) or out.stderr[-2000:]


def failureText(log: str) -> str:
    """
    The traceback or libFuzzer's report, without the coverage lines.
    """
    start = log.find("=== Uncaught Python exception: ===")
    if start < 0:
        start = max(log.find("==ERROR: libFuzzer"), log.find("ERROR: libFuzzer"))
    if start < 0:
        return ""
    text = log[start:]
    end = text.find("\nMS: ")
    return (text if end < 0 else text[:end]).strip()[-6000:]


def runTarget(name: str, seconds: float, corpus: Path | None = None, seed: int | None = None,
              runs: int | None = None, artifacts: Path = ARTIFACTS) -> Result:
    """
    Fuzz C{name} for at most C{seconds} (and at most C{runs} inputs), from
    its seeds and C{corpus}, with libFuzzer's C{seed} (random when
    C{None}).
    """
    corpus = corpus or CORPUS / name
    corpus.mkdir(parents=True, exist_ok=True)
    out = artifacts / name
    out.mkdir(parents=True, exist_ok=True)
    log = out / "last-run.log"
    args = [
        sys.executable, str(target(name)), str(corpus), str(HERE / "seeds" / name),
        f"-max_total_time={max(1, round(seconds))}",
        f"-max_len={MAX_LEN[name]}",
        f"-dict={HERE / 'dicts' / (name + '.dict')}",
        f"-artifact_prefix={out}/",
        "-timeout=20",  # seconds one input may take: a hang is a finding too
        "-rss_limit_mb=2048",
        "-print_final_stats=1",
    ]
    if seed is not None:
        args.append(f"-seed={seed}")
    if runs is not None:
        args.append(f"-runs={runs}")
    started = time.monotonic()
    with log.open("wb") as f:
        proc = subprocess.run(args, cwd=ROOT, env=environment(), stdout=f,
                              stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                              timeout=seconds + 120)
    elapsed = time.monotonic() - started
    text = log.read_text(errors="replace")
    written = re.findall(r"Test unit written to (\S+)", text)
    done = re.findall(r"stat::number_of_executed_units:\s*(\d+)", text)
    return Result(name, elapsed, int(done[-1]) if done else None, proc.returncode, log,
                  Path(written[-1]) if written else None, failureText(text))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("targets", nargs="*", help=f"some of {', '.join(TARGETS)} (default all)")
    parser.add_argument("--seconds", type=float, default=60, help="per target (default 60)")
    parser.add_argument("--seed", type=int, help="libFuzzer's seed (default random)")
    options = parser.parse_args()
    unknown = set(options.targets) - set(TARGETS)
    if unknown:
        parser.error(f"no target {', '.join(sorted(unknown))}; there are {', '.join(TARGETS)}")
    results = []
    for name in options.targets or TARGETS:
        result = runTarget(name, options.seconds, seed=options.seed)
        print(result.report() if not result.ok else result.summary(), flush=True)
        results.append(result)
    failed = [r.target for r in results if not r.ok]
    if failed:
        print(f"fuzz: failures in {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
