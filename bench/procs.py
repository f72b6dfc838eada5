"""
The benchmark's processes as Linux sees them: pinning a child to a core and
killing it with the harness, and reading CPU time, memory, descendants and
every core's busy time from C{/proc}.
"""

from __future__ import annotations

import ctypes
import os
import resource
import signal
import time
from typing import Any, Callable

TICK = os.sysconf("SC_CLK_TCK")
SERVER_CORE, LOAD_CORE = 0, 1


class BenchError(RuntimeError):
    """
    A measurement that could not be made: its scenario is reported failed
    and the others still run.
    """


def usableCores() -> set[int]:
    try:
        return os.sched_getaffinity(0)
    except AttributeError:  # not Linux
        return set()


def loadCore() -> int | None:
    """
    The core the load generator (and py-spy) is pinned to, or C{None} on a
    machine with one core.
    """
    return LOAD_CORE if len(usableCores()) > 1 else None


def childSetup(core: int | None) -> Callable[[], None]:
    """
    What a child does before it runs: raise its file limit, pin it to
    C{core} (unless C{None}), and arrange to be killed when the harness dies,
    so a harness killed by a test's timeout leaves no server behind.
    """
    dieWithParent = _deathSignal()

    def setup() -> None:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        want = hard if hard != resource.RLIM_INFINITY else 65536
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, 65536), hard))
        if core is not None:
            os.sched_setaffinity(0, {core})
        dieWithParent()
    return setup


def _deathSignal() -> Callable[[], None]:
    """
    A call that makes the calling process get SIGKILL when its parent exits
    (Linux C{prctl(PR_SET_PDEATHSIG)}), or does nothing elsewhere.  libc is
    looked up here, in the parent: the child of a threaded process should
    not load libraries between fork and exec.
    """
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return lambda: None
    PR_SET_PDEATHSIG = 1
    return lambda: prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def somaxconn() -> int:
    """
    The kernel's cap on a listening socket's accept queue, which our service
    asks for: the reference servers get the same, so a storm measures the
    servers and not their default backlogs (511 for Node, 100 for asyncio).
    """
    try:
        with open("/proc/sys/net/core/somaxconn") as f:
            return int(f.read())
    except (OSError, ValueError):
        return 4096


def cpuSeconds(pid: int) -> float:
    """
    utime + stime of C{pid}, in seconds.
    """
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def rssKiB(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise BenchError(f"no VmRSS for {pid}")


def _measured(measure: Callable[[int], float], pids: list[int]) -> float:
    """
    C{measure} summed over C{pids}; a process that has just gone counts as
    nothing (the server's C{alive()} check reports it).
    """
    total = 0.0
    for pid in pids:
        try:
            total += measure(pid)
        except (OSError, BenchError):
            pass
    return total


def descendants(pid: int) -> list[int]:
    """
    Every process below C{pid}, from C{/proc/<pid>/task/*/children}.
    """
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/children") as f:
                children = [int(c) for c in f.read().split()]
        except OSError:
            continue
        for child in children:
            found += [child, *descendants(child)]
    return found


def coreBusy() -> tuple[dict[int, float], dict[int, float]]:
    """
    Busy and softirq seconds of each core since boot, from /proc/stat: what
    else ran on the benchmark's cores (the machine may be shared), and the
    kernel's network receive work, which is not charged to any process.
    """
    busy, soft = {}, {}
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("cpu") and line[3].isdigit():
                name, *ticks = line.split()
                user, nice, system, idle, iowait, irq, softirq, steal = map(int, ticks[:8])
                busy[int(name[3:])] = (user + nice + system + irq + softirq + steal) / TICK
                soft[int(name[3:])] = softirq / TICK
    return busy, soft


def sample(processes: dict[str, list[int]], loadgen: int | None = None) -> dict[str, Any]:
    """
    The server's CPU seconds (in all, and by the role of each of its
    C{processes}), its memory, every core's busy time and, when given, the
    load generator's CPU seconds.
    """
    busy, soft = coreBusy()
    cpuBy = {role: _measured(cpuSeconds, pids) for role, pids in processes.items()}
    out = {"t": time.monotonic(), "cpu": sum(cpuBy.values()), "cpuBy": cpuBy,
           "rss": int(sum(_measured(rssKiB, pids) for pids in processes.values())),
           "cores": busy, "softirq": soft}
    if loadgen is not None:
        out["loadgen"] = _measured(cpuSeconds, [loadgen])
    return out
