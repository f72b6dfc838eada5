"""
Driving the Node load generator (C{bench/loadgen.js}) against a server:
the server is sampled at every mark the generator prints, and a L{LoadRun}
turns the samples into the figures of a measured window.
"""

from __future__ import annotations

import json
import queue
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from bench.procs import LOAD_CORE, SERVER_CORE, BenchError, childSetup, loadCore, sample
from bench.targets import Server

BENCH = Path(__file__).resolve().parent


def ensureWs(npm: str, quiet: bool = True) -> None:
    """
    C{npm ci} (or install) C{ws} into bench/node_modules, only when missing.
    """
    if (BENCH / "node_modules" / "ws" / "package.json").exists():
        return
    lock = (BENCH / "package-lock.json").exists()
    cmd = [npm, "ci" if lock else "install", "--prefix", str(BENCH), "--no-audit", "--no-fund",
           "--loglevel=error"]
    done = subprocess.run(cmd, cwd=str(BENCH), capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise BenchError(f"{' '.join(cmd)} failed:\n{done.stdout}\n{done.stderr}")


@dataclass
class LoadRun:
    result: dict[str, Any]
    marks: dict[str, dict[str, Any]]
    baseline: dict[str, Any]
    errors: list[str] = field(default_factory=list)
    #: The cores the server ran on.
    cores: tuple[int, ...] = (SERVER_CORE,)
    #: L{Server.summary} after the run.
    serverInfo: dict[str, Any] = field(default_factory=dict)

    def mark(self, name: str) -> dict[str, Any]:
        """
        The server's sample at the mark C{name}; if the run never got a
        sample there (the server died, the load generator gave up), a
        L{BenchError} with the run's errors instead of a C{KeyError}.
        """
        try:
            return self.marks[name]
        except KeyError:
            raise BenchError(f"no sample at {name!r}: "
                             + ("; ".join(self.errors[-5:]) or "no error reported")) from None

    def cpu(self, a: str = "start", b: str = "end") -> float:
        return self.mark(b)["cpu"] - self.mark(a)["cpu"]

    def cpuBy(self, a: str = "start", b: str = "end") -> dict[str, float]:
        """
        CPU seconds in the window by the role of the server's processes.
        """
        before = self.mark(a)["cpuBy"]
        return {role: cpu - before.get(role, 0.0) for role, cpu in self.mark(b)["cpuBy"].items()}

    def wall(self, a: str = "start", b: str = "end") -> float:
        return self.mark(b)["t"] - self.mark(a)["t"]

    def foreign(self, a: str = "start", b: str = "end") -> float | None:
        """
        Share of the server's cores spent on anything but the server during
        the window (other processes on a shared machine, interrupts); when
        the server shares the load generator's core, the load generator's
        CPU is not counted as foreign either.  In cores: 1.0 is one core.
        """
        try:
            busy = sum(self.marks[b]["cores"][c] - self.marks[a]["cores"][c] for c in self.cores)
            own = self.cpu(a, b)
            if LOAD_CORE in self.cores:
                own += self.marks[b]["loadgen"] - self.marks[a]["loadgen"]
        except KeyError:
            return None
        wall = self.wall(a, b)
        return max(0.0, (busy - own) / wall) if wall else None

    def softirq(self, a: str = "start", b: str = "end") -> float | None:
        """
        Softirq seconds on the server's cores during the window: loopback TCP
        receive processing for the frames the server sends, which Linux does
        not charge to the server process.
        """
        try:
            return sum(self.marks[b]["softirq"][c] - self.marks[a]["softirq"][c]
                       for c in self.cores)
        except KeyError:
            return None


def runLoad(node: str, server: Server, config: dict[str, Any], timeLimit: float,
            onMark: Callable[[str], None] | None = None) -> LoadRun:
    """
    Run the load generator against C{server}; sample the server at every
    MARK line the generator prints.
    """
    config = dict(config, timeLimit=timeLimit)
    baseline = sample(server.processes())
    proc = subprocess.Popen(
        [node, str(BENCH / "loadgen.js"), json.dumps(config)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True,
        preexec_fn=childSetup(loadCore()),
    )
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert proc.stdout
        for line in proc.stdout:
            lines.put(line.rstrip("\n"))
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    marks: dict[str, dict[str, float]] = {}
    errors: list[str] = []
    result: dict[str, Any] | None = None
    other: list[str] = []
    deadline = time.monotonic() + timeLimit + 15
    try:
        while time.monotonic() < deadline:
            try:
                line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                break
            if line is None:
                break
            if line.startswith("MARK "):
                name = line[5:].strip()
                if server.alive():
                    marks[name] = sample(server.processes(), proc.pid)
                if onMark:
                    onMark(name)
            elif line.startswith("RESULT "):
                result = json.loads(line[7:])
            elif line.startswith("ERROR "):
                errors.append(line[6:])
            else:
                other.append(line)
    finally:
        if proc.poll() is None:
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    if not server.alive():
        errors.append(server.failure())
    if result is None:
        raise BenchError(f"load generator gave no result against {server.name}:\n"
                         + "\n".join((errors + other)[-30:]))
    errors.extend(e for e in result.get("errors", []) if e not in errors)
    return LoadRun(result, marks, baseline, errors, cores=server.cores)


def serverCost(run: LoadRun, count: str, per: str, detailed: bool = False) -> dict[str, Any]:
    """
    The load generator's result with what the server spent on it in the
    window: its CPU share, CPU microseconds per unit of work (C{per}, over
    the result's C{count}), by process role for a server of several, and the
    other load and softirq on its cores.  C{detailed} (the fan-outs) adds
    the CPU seconds and the cost per unit with softirq.
    """
    r = dict(run.result)
    cpu, wall, soft = run.cpu(), run.wall(), run.softirq()
    n = r.get(count) or 0
    if detailed:
        r["server_cpu_s"] = cpu
    r["server_cpu_share"] = cpu / wall if wall else None
    r[per] = cpu / n * 1e6 if n else None
    r["foreign_cpu_share"] = run.foreign()
    r["softirq_share"] = soft / wall if soft is not None and wall else None
    if detailed:
        r[f"{per}_with_softirq"] = (cpu + soft) / n * 1e6 if n and soft is not None else None
    byRole = run.cpuBy()
    if len(byRole) > 1:
        r[f"{per}_by_process"] = {role: c / n * 1e6 for role, c in byRole.items()} if n else None
    return r
