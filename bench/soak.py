#!/usr/bin/env python3
"""
Soak the real service: mixed chat, echo and clock load with connection
churn for a number of minutes, then a verdict on errors and memory.

    python bench/soak.py --minutes 10      # make soak MINUTES=10
    python bench/soak.py --minutes 1       # what make test runs

Starts C{twistd wsservice} with its default options (unpinned: the machine
may be shared), and drives it from this process with Autobahn clients
(L{bench.soakclients}): chat rooms whose members check every event
continues the room's C{seq} over every reconnect, echo round trips of text
and binary frames checked byte for byte, clock clients checking their
ticks, and half of every kind closing after a few seconds (cleanly or by
dropping TCP, in turn) and reconnecting at once, chat members with
C{?since=&epoch=}.  Samples the server's C{VmRSS} every few seconds and
prints the series, the errors by kind, p50/p99 of chat delivery and echo
round trip, and the CPU share of the server and of this load generator.

Exits 1 if anything went wrong or memory grew after warm-up (see
L{memoryVerdict}); latency is reported, never judged.
"""

from __future__ import annotations

import argparse
import re
import resource
import statistics
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from twisted.internet.defer import Deferred
from twisted.internet.task import LoopingCall

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.procs import BenchError, childSetup, cpuSeconds, rssKiB  # noqa: E402
from bench.soakclients import ChatMember, Load  # noqa: E402
from tests.support.processes import ServiceProcess  # noqa: E402

#: Memory may end this much above its post-warm-up baseline (the larger
#: of the two), measured as the medians described in L{memoryVerdict}.
TOLERANCE_MIB = 2.0
TOLERANCE_PERCENT = 5.0
#: A load generator above this share of its core may be the bottleneck,
#: and the latencies partly its own.
SATURATED = 0.8
#: Server log lines that are errors at this modest load: faults,
#: tracebacks, and warnings (over its rate, too slow to read).
PROBLEM = re.compile(r"#(?:warn|error|critical)\]|Traceback|Unhandled")
#: Problem lines quoted in the report.
DETAILS = 5


@dataclass(frozen=True)
class Growth:
    """
    The memory verdict: the baseline and end medians and the growth
    allowed, in KiB.
    """

    baseline: float
    end: float
    allowed: float

    @property
    def growth(self) -> float:
        return self.end - self.baseline

    @property
    def ok(self) -> bool:
        return self.growth <= self.allowed


def memoryVerdict(series: Sequence[float], warmup: int, toleranceMiB: float = TOLERANCE_MIB,
                  tolerancePercent: float = TOLERANCE_PERCENT) -> Growth:
    """
    Whether the RSS C{series} (KiB, one sample per interval) grew after its
    first C{warmup} samples: the median of the last third of the rest
    against the median of its first third, which a leak separates by two
    thirds of the measured time while single spikes (a garbage collection,
    a burst of churn) move neither.  Allowed: C{toleranceMiB} or
    C{tolerancePercent} of the baseline, whichever is larger.
    """
    measured = list(series[warmup:])
    if len(measured) < 6:
        raise ValueError(f"{len(measured)} samples after warm-up; at least 6 are needed")
    third = len(measured) // 3
    baseline = statistics.median(measured[:third])
    end = statistics.median(measured[-third:])
    return Growth(baseline, end, max(toleranceMiB * 1024, baseline * tolerancePercent / 100))


def percentile(samples: Sequence[float], share: float) -> float | None:
    """
    The C{share} (0 to 1) percentile of C{samples}, by rank; C{None} if empty.
    """
    if not samples:
        return None
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


class Soak:
    """
    One soak run: the load on the reactor for C{seconds}, the server's RSS
    and both sides' CPU sampled every C{interval} seconds.
    """

    def __init__(self, reactor: Any, port: int, pid: int, seconds: float, interval: float,
                 alive: Callable[[], bool], **loadOptions: Any) -> None:
        self.reactor = reactor
        self.pid = pid
        self.seconds = seconds
        self.interval = interval
        self.alive = alive
        self.load = Load(reactor, port, **loadOptions)
        self.rss: list[int] = []
        self.cpu: dict[str, float] = {}

    def run(self) -> Any:
        """
        Start the load and the sampling; the Deferred fires once the load
        has stopped and every client is closed.
        """
        self.started = time.monotonic()
        self._cpu0 = (cpuSeconds(self.pid), _ownCpu())
        self.load.start()
        self.finished: Deferred[None] = Deferred()
        self.sampler = LoopingCall(self._sample)
        self.sampler.clock = self.reactor
        self.sampler.start(self.interval, now=True)
        self._end = self.reactor.callLater(self.seconds, self._stop)
        return self.finished

    def _sample(self) -> None:
        if not self.alive():
            self.load.tally.error("server exited", "during the soak")
            if self._end.active():
                self._end.cancel()
                self._stop()
            return
        try:
            self.rss.append(rssKiB(self.pid))
        except (OSError, BenchError) as e:
            self.load.tally.error("RSS not readable", str(e))
        self.load.watch()

    def _stop(self) -> None:
        wall = time.monotonic() - self.started
        server, own = cpuSeconds(self.pid) - self._cpu0[0], _ownCpu() - self._cpu0[1]
        self.cpu = {"server": server / wall, "load generator": own / wall}
        self.sampler.stop()
        self.load.stop().chainDeferred(self.finished)


def _ownCpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.1f} ms"


def report(soak: Soak, warmup: int, service: ServiceProcess | None, exitCode: int | None,
           toleranceMiB: float, tolerancePercent: float) -> tuple[list[str], list[str]]:
    """
    The lines to print and the reasons the soak failed (none: it passed).
    With the C{service} we started, its problem log lines (L{PROBLEM}) and
    an exit code other than 0 on SIGTERM count as errors too.
    """
    tally, load = soak.load.tally, soak.load
    kinds = Counter(client.subprotocol for client in load.clients)
    rooms = len({client.room for client in load.clients if isinstance(client, ChatMember)})
    lines = [
        f"load: {len(load.clients)} clients (chat {kinds['chat']} in {rooms} rooms, echo "
        f"{kinds['echo']}, clock {kinds['clock']}), {load.churners()} of them churning",
        f"RSS MiB every {soak.interval:g} s ({len(soak.rss)} samples, the first {warmup} warm-up): "
        + " ".join(f"{kib / 1024:.1f}" for kib in soak.rss),
    ]
    if soak.cpu:
        lines.append("CPU: server {server:.0%} of a core, load generator {load:.0%}".format(
            server=soak.cpu["server"], load=soak.cpu["load generator"]))
    counts = tally.counts
    lines.append("counts: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    for kind, samples in tally.latency.items():
        lines.append(f"{kind}: p50 {_ms(percentile(samples, 0.5))}, "
                     f"p99 {_ms(percentile(samples, 0.99))} ({len(samples)} samples)")
    errors = dict(tally.errors)
    problems = [line for line in service.lines if PROBLEM.search(line)] if service else []
    if problems:
        errors["server log problems"] = len(problems)
        tally.details["server log problems"] = problems[:DETAILS]
    if service is not None and exitCode != 0:
        errors["server exit code"] = 1
        tally.details["server exit code"] = [f"exited {exitCode} on SIGTERM"]
    if errors:
        lines.append("errors: " + ", ".join(f"{k} {v}" for k, v in sorted(errors.items())))
        for kind in sorted(errors):
            lines += [f"  {kind}: {detail}" for detail in tally.details.get(kind, [])]
    else:
        lines.append("errors: none")
    failures = [f"{sum(errors.values())} errors"] if errors else []
    if counts["chat deliveries"] == 0 or counts["echo round trips"] == 0 or counts["clock ticks"] == 0:
        failures.append("some kind of client got nothing through")
    if not counts["reconnects"]:
        failures.append("no connection churned")
    try:
        growth = memoryVerdict(soak.rss, warmup, toleranceMiB, tolerancePercent)
    except ValueError as e:
        failures.append(f"memory not judged: {e}")
    else:
        lines.append(
            f"memory: baseline {growth.baseline / 1024:.1f} MiB, end {growth.end / 1024:.1f} MiB, "
            f"growth {growth.growth / 1024:+.2f} MiB (allowed {growth.allowed / 1024:.2f} MiB: "
            f"{toleranceMiB:g} MiB or {tolerancePercent:g}%)")
        if not growth.ok:
            failures.append(f"memory grew {growth.growth / 1024:.2f} MiB after warm-up, "
                            f"more than {growth.allowed / 1024:.2f} MiB")
    if soak.cpu.get("load generator", 0) > SATURATED:
        lines.append("note: the load generator was near saturation; latencies are partly its own")
    return lines, failures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10, help="how long the load runs")
    parser.add_argument("--warmup", type=float, default=None, metavar="SECONDS",
                        help="samples not judged for growth (default: a fifth of the run, "
                             "20 to 120 s)")
    parser.add_argument("--sample-interval", type=float, default=None, metavar="SECONDS",
                        help="RSS sampling interval (default: 1 s in short runs, up to 5 s)")
    parser.add_argument("--tolerance-mib", type=float, default=TOLERANCE_MIB)
    parser.add_argument("--tolerance-percent", type=float, default=TOLERANCE_PERCENT)
    parser.add_argument("--rooms", type=int, default=4)
    parser.add_argument("--members", type=int, default=6, help="chat members per room")
    parser.add_argument("--echoes", type=int, default=8)
    parser.add_argument("--clocks", type=int, default=8)
    parser.add_argument("--server-arg", action="append", default=[], metavar="ARG",
                        help="extra option for the service (repeatable)")
    parser.add_argument("--port", type=int, default=None,
                        help="soak a service already listening on this loopback port "
                             "(needs --pid) instead of starting one")
    parser.add_argument("--pid", type=int, default=None, help="that service's process id")
    args = parser.parse_args(argv)
    if (args.port is None) != (args.pid is None):
        parser.error("--port and --pid go together")
    seconds = args.minutes * 60
    interval = args.sample_interval or min(5.0, max(1.0, seconds / 120))
    warmupSeconds = args.warmup if args.warmup is not None else min(120.0, max(20.0, seconds / 5))
    warmup = int(warmupSeconds / interval)

    service: ServiceProcess | None = None
    if args.port is None:
        # Unpinned, and killed with us (childSetup), since the machine may be shared.
        service = ServiceProcess.onLoopback(*args.server_arg, preexec=childSetup(None)).start()
        port, pid, alive = service.port, service.pid, service.alive
    else:
        port, pid = args.port, args.pid
        alive = lambda: Path(f"/proc/{pid}").exists()  # noqa: E731
    print(f"soak: {args.minutes:g} min against pid {pid} on port {port}", flush=True)

    from twisted.internet import reactor

    soak = Soak(reactor, port, pid, seconds, interval, alive, rooms=args.rooms,
                members=args.members, echoes=args.echoes, clocks=args.clocks)
    outcome: list[Any] = []

    def done(result: Any) -> None:
        outcome.append(result)
        reactor.stop()

    reactor.callWhenRunning(lambda: soak.run().addBoth(done))
    try:
        reactor.run()
    finally:
        exitCode = service.stop() if service is not None else None
    lines, failures = report(soak, warmup, service, exitCode, args.tolerance_mib,
                             args.tolerance_percent)
    if not outcome:
        failures.append("interrupted before the end")
    elif outcome[0] is not None:
        failures.append(f"the load failed: {outcome[0]}")
    print("\n".join(lines))
    if failures:
        print("soak FAILED: " + "; ".join(failures))
        return 1
    print("soak passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
