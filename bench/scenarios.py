"""
The six scenarios and the profiling runs, at the sizes of a L{Plan}:
L{Bench} starts each server, drives the load, and keeps the figures,
notes and errors for the report.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from bench.loadrun import LoadRun, runLoad, serverCost
from bench.procs import BenchError, childSetup, loadCore
from bench.report import integrity, ms, num, pct, spreadNote, summariseProfile
from bench.targets import (
    WORKERS_PINNING, Server, WorkerPool, nodeBroadcast, nodeEcho, oneSided, ours, websocketsEcho,
)
from tests.support.processes import REPO

#: Share of the server core taken by other processes above which a cheap
#: measurement is repeated once.
NOISY = 0.35


@dataclass
class Plan:
    fanClients: int
    senders: int
    fanSeconds: float
    rateSeconds: float
    rate: float
    echoClients: int
    echoSeconds: float
    idleClients: int
    idleRooms: int
    scaleClients: tuple[int, ...]
    scaleSeconds: float
    window: int = 4
    retryNoisy: bool = True
    handshakeProfileClients: int = 3000
    handshakeProfileSeconds: float = 5


FULL = Plan(fanClients=1000, senders=10, fanSeconds=8, rateSeconds=8, rate=50,
            echoClients=50, echoSeconds=6, idleClients=10000, idleRooms=100,
            scaleClients=(100, 1000, 5000), scaleSeconds=6)
QUICK = Plan(fanClients=50, senders=5, fanSeconds=1.5, rateSeconds=1.5, rate=20,
             echoClients=10, echoSeconds=1.5, idleClients=200, idleRooms=4,
             scaleClients=(20, 50), scaleSeconds=1, retryNoisy=False)


def _spansWorkers(run: LoadRun) -> bool:
    return not oneSided(run.serverInfo.get("clients_per_worker"))


class Bench:
    def __init__(self, plan: Plan, python: str, node: str, log: Callable[[str], None],
                 serverArgs: Sequence[str] = ()) -> None:
        self.plan = plan
        self.python = python
        self.node = node
        #: Extra options for our service in every scenario (C{--server-arg}).
        self.serverArgs = tuple(serverArgs)
        self.log = log
        self.results: dict[str, Any] = {}
        self.errors: list[str] = []
        self.notes: list[str] = []

    def _with(self, server: Server, config: dict[str, Any], timeLimit: float,
              onMark: Callable[[Server, str], None] | None = None) -> LoadRun:
        server.start()
        try:
            config = dict(config, url=config["url"].replace("PORT", str(server.port)))
            run = runLoad(self.node, server, config, timeLimit,
                          (lambda name: onMark(server, name)) if onMark else None)
            run.serverInfo = server.summary()
        finally:
            server.stop()
        for e in run.errors:
            self.errors.append(f"{server.name}: {e}")
        return run

    def _quietest(self, measure: Callable[[], LoadRun], retry: bool) -> LoadRun:
        """
        Measure; if the kernel gave every client to one worker (the room then
        never crossed processes), or if C{retry} and something else took more
        than L{NOISY} of the server core during the window (a shared
        machine), measure once more and keep the better run.  Every attempt
        is logged.
        """
        run = measure()
        if not _spansWorkers(run):
            why = "every client went to one worker"
        elif retry and self.plan.retryNoisy and (run.foreign() or 0) > NOISY:
            why = f"other load {pct(run.foreign())} on the server core(s)"
        else:
            return run
        self.log(f"    ({why}; measuring again)")
        again = measure()
        rank = lambda r: (_spansWorkers(r), -(r.foreign() or 0))  # noqa: E731
        return again if rank(again) > rank(run) else run

    def chatTargets(self) -> list[tuple[str, Callable[[], Server], dict[str, Any]]]:
        """
        Our chat and the Node broadcast server, with what the load generator
        needs to reach each; C{chat} makes it follow our room's counts and seq.
        """
        return [
            ("ours", lambda: ours(self.python, self.serverArgs),
             {"url": "ws://127.0.0.1:PORT/bench", "protocol": "chat", "chat": True}),
            ("node", lambda: nodeBroadcast(self.node), {"url": "ws://127.0.0.1:PORT/"}),
        ]

    def fanout(self, clients: int, seconds: float, rate: float = 0,
               onMark: Callable[[Server, str], None] | None = None,
               only: str | None = None,
               targets: list[tuple[str, Callable[[], Server], dict[str, Any]]] | None = None,
               ) -> dict[str, Any]:
        p = self.plan
        out = {}
        for key, make, base in targets or self.chatTargets():
            if only and key != only:
                continue
            config = dict(base, mode="fanout", clients=clients, senders=p.senders, rate=rate,
                          window=p.window, duration=seconds, warmup=1 if seconds > 2 else 0.5,
                          concurrency=50, drain=10, settleMax=60,
                          # Our chat's joins are O(room size) each: 5,000
                          # clients take minutes to join one room.
                          connectTimeout=min(150, 30 + clients / 25))
            run = self._quietest(lambda: self._with(
                make(), config, timeLimit=config["connectTimeout"] + 120 + 2 * seconds,
                onMark=onMark), retry=clients <= 1000 and onMark is None)
            r = serverCost(run, "deliveries_in_window", "cpu_us_per_delivery", detailed=True)
            r.update(run.serverInfo)
            out[key] = r
            self.log(f"  {key:5} fan-out {clients} clients rate={rate or 'max'}: "
                     f"{r.get('deliveries_per_s', 0):,.0f} deliveries/s, "
                     f"{num(r['cpu_us_per_delivery'])} us CPU/delivery, p50 {ms(r.get('p50_us'))} "
                     f"p99 {ms(r.get('p99_us'))}, lost/dup/gaps/room gaps {integrity(r)}, server "
                     f"CPU {pct(r['server_cpu_share'])}, loadgen CPU "
                     f"{pct(r.get('loadgen_cpu_share'))}, other load on server core(s) "
                     f"{pct(r['foreign_cpu_share'])}, connect {r.get('connect_s', 0):.1f}s + "
                     f"settle {r.get('settle_s', 0):.1f}s, filled in {num(r.get('fill_s'), 2)}s "
                     f"(loadgen CPU {pct(r.get('fill_loadgen_cpu_share'))})" + spreadNote(r))
        return out

    def workersRedis(self) -> dict[str, Any]:
        """
        Scenarios 1 and 2 against C{--workers 2} sharing the room through a
        throwaway redis-server (see L{WORKERS_PINNING}); without a
        redis-server, skipped with the reason.
        """
        redis = shutil.which("redis-server")
        if redis is None:
            reason = "redis-server not found on PATH"
            self.notes.append(f"scenario 6 skipped: {reason}")
            self.log(f"  skipped: {reason}")
            return {"skipped": reason}
        p = self.plan
        targets = [("2 workers", lambda: WorkerPool(self.python, redis, workers=2,
                                                        serverArgs=self.serverArgs),
                    {"url": "ws://127.0.0.1:PORT/bench", "protocol": "chat", "chat": True})]
        self.notes.append(WORKERS_PINNING)
        out: dict[str, Any] = {"workers": 2, "pinning": WORKERS_PINNING,
                               "one_process": self._oneProcess()}
        out["fanout"] = self.fanout(p.fanClients, p.fanSeconds, targets=targets)["2 workers"]
        out["fixed_rate"] = self.fanout(p.fanClients, p.rateSeconds, rate=p.rate,
                                        targets=targets)["2 workers"]
        for kind in ("fanout", "fixed_rate"):
            if oneSided(out[kind].get("clients_per_worker")):
                self.notes.append(f"scenario 6 {kind}: every client went to one worker, twice, "
                                  "so the room did not cross Redis")
        return out

    def _oneProcess(self) -> dict[str, Any]:
        """
        Our single process's scenario 1 and 2 figures of this run, which
        scenario 6 is compared with; measured here when 1 or 2 did not run.
        """
        p = self.plan
        one: dict[str, Any] = {}
        for kind, rate, seconds in (("fanout", 0, p.fanSeconds),
                                    ("fixed_rate", p.rate, p.rateSeconds)):
            single = self.results.get(kind, {}).get("ours")
            if single is None:
                self.log(f"  one process, for comparison ({kind}):")
                single = self.fanout(p.fanClients, seconds, rate=rate, only="ours")["ours"]
            one[kind] = single
        return one

    def echo(self, onMark: Callable[[Server, str], None] | None = None,
             only: str | None = None) -> dict[str, Any]:
        p = self.plan
        targets = [
            ("ours", lambda: ours(self.python, self.serverArgs),
             {"url": "ws://127.0.0.1:PORT/", "protocol": "echo"}),
            ("node", lambda: nodeEcho(self.node), {"url": "ws://127.0.0.1:PORT/"}),
            ("websockets", lambda: websocketsEcho(self.python), {"url": "ws://127.0.0.1:PORT/"}),
        ]
        out = {}
        for key, make, base in targets:
            if only and key != only:
                continue
            config = dict(base, mode="echo", clients=p.echoClients, duration=p.echoSeconds,
                          warmup=1 if p.echoSeconds > 2 else 0.5)
            try:
                run = self._quietest(lambda: self._with(
                    make(), config, timeLimit=60 + p.echoSeconds, onMark=onMark),
                    retry=onMark is None)
            except BenchError as e:
                if key != "websockets":
                    raise
                # The third reference is optional (websockets comes with
                # the test extras).
                self.notes.append(f"Python websockets reference skipped: {e}")
                self.log(f"  websockets echo: skipped ({str(e).splitlines()[0]})")
                continue
            r = serverCost(run, "round_trips", "cpu_us_per_round_trip")
            out[key] = r
            self.log(f"  {key:10} echo: {r.get('round_trips_per_s', 0):,.0f} round trips/s, "
                     f"{num(r['cpu_us_per_round_trip'])} us CPU/trip, p99 {ms(r.get('p99_us'))}, "
                     f"server CPU {pct(r['server_cpu_share'])}, loadgen CPU "
                     f"{pct(r.get('loadgen_cpu_share'))}, other load on server core "
                     f"{pct(r['foreign_cpu_share'])}")
        return out

    def idle(self, onMark: Callable[[Server, str], None] | None = None, only: str | None = None,
             clients: int | None = None) -> dict[str, Any]:
        p = self.plan
        out = {}
        for key, make, base in self.chatTargets():
            if only and key != only:
                continue
            rooms = p.idleRooms if key == "ours" else 1
            url = base["url"].replace("/bench", "/idle")
            config = dict(base, url=url, mode="idle", clients=clients or p.idleClients,
                          rooms=rooms, concurrency=50, hold=2, settleMax=60, quietMs=1000,
                          connectTimeout=150)
            run = self._with(make(), config, timeLimit=240, onMark=onMark)
            r = dict(run.result)
            n = r.get("clients") or 0
            if "settled" in run.marks and n:
                grew = run.marks["settled"]["rss"] - run.baseline["rss"]
                r["rss_base_kib"] = run.baseline["rss"]
                r["rss_settled_kib"] = run.marks["settled"]["rss"]
                r["kib_per_connection"] = grew / n
            else:
                r["kib_per_connection"] = None
            r["rooms"] = rooms
            if "connected" in run.marks:
                cpu = run.cpu("start", "connected")
                r["server_cpu_us_per_handshake"] = cpu / n * 1e6 if n else None
                r["foreign_cpu_share"] = run.foreign("start", "connected")
            out[key] = r
            self.log(f"  {key:5} idle {n} connections in {rooms} room(s): "
                     f"{r.get('handshakes_per_s', 0):,.0f} handshakes/s, "
                     f"{num(r['kib_per_connection'])} KiB/connection, loadgen CPU "
                     f"{pct(r.get('loadgen_cpu_share'))}, other load on server core "
                     f"{pct(r.get('foreign_cpu_share'))}")
        return out

    def runAll(self, scenarios: set[int] = frozenset(range(1, 7))) -> None:
        """
        Run the scenarios; one that fails is reported and the rest still run.
        """
        for number in sorted(scenarios):
            try:
                self._scenario(number)
            except BenchError as e:
                self.errors.append(f"scenario {number}: {e}")
                self.log(f"  scenario {number} failed: {str(e).splitlines()[0]}")

    def _scenario(self, number: int) -> None:
        p = self.plan
        scenarios = {number}
        if 1 in scenarios:
            self.log(f"[1] chat fan-out, {p.fanClients} clients, {p.senders} senders, max rate")
            self.results["fanout"] = self.fanout(p.fanClients, p.fanSeconds)
        if 2 in scenarios:
            self.log(f"[2] chat fan-out, {p.fanClients} clients, fixed {p.rate:g} msg/s")
            self.results["fixed_rate"] = self.fanout(p.fanClients, p.rateSeconds, rate=p.rate)
        if 3 in scenarios:
            self.log(f"[3] echo, {p.echoClients} clients, one message in flight each")
            self.results["echo"] = self.echo()
        if 4 in scenarios:
            self.log(f"[4] {p.idleClients} idle connections")
            self.results["idle"] = self.idle()
        if 5 in scenarios:
            self.log(f"[5] cost per delivery against room size {p.scaleClients}")
            scale = {}
            for n in p.scaleClients:
                if n == p.fanClients and "fanout" in self.results:
                    scale[str(n)] = self.results["fanout"]
                else:
                    scale[str(n)] = self.fanout(n, p.scaleSeconds)
            self.results["scale"] = scale
        if 6 in scenarios:
            self.log(f"[6] --workers 2 with Redis: scenarios 1 and 2 again, {p.fanClients} "
                     f"clients in one room across both workers")
            self.results["workers2_redis"] = self.workersRedis()

    # -- profiling ------------------------------------------------------------

    def profile(self, pyspy: str, outdir: Path) -> dict[str, Any]:
        """
        Re-run scenarios 1 and 3 against our server with py-spy attached for
        the measured window; summarise the hottest functions.
        """
        outdir.mkdir(parents=True, exist_ok=True)
        profiles: dict[str, Any] = {}
        p = self.plan
        for label, seconds, runner in (
            ("fanout", p.fanSeconds, lambda hook: self.fanout(p.fanClients, p.fanSeconds,
                                                              onMark=hook, only="ours")),
            ("echo", p.echoSeconds, lambda hook: self.echo(onMark=hook, only="ours")),
            ("handshakes", p.handshakeProfileSeconds,
             lambda hook: self.idle(onMark=hook, only="ours", clients=p.handshakeProfileClients)),
        ):
            raw = outdir / f"pyspy-{label}.txt"
            spies: list[subprocess.Popen[bytes]] = []

            def hook(server: Server, name: str, raw: Path = raw, seconds: float = seconds) -> None:
                if name == "start":
                    spies.clear()
                    spies.append(subprocess.Popen(
                        [pyspy, "record", "--pid", str(server.pid), "--duration",
                         str(max(1, int(seconds))), "--rate", "200", "--nonblocking",
                         "--format", "raw", "--nolineno", "--output", str(raw)],
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                        preexec_fn=childSetup(loadCore())))
                elif name in ("end", "connected"):
                    for spy in spies:
                        try:
                            spy.wait(seconds + 15)
                        except subprocess.TimeoutExpired:
                            spy.kill()

            self.log(f"  profiling our server under {label} (py-spy, 200 Hz)")
            runner(hook)
            if raw.exists():
                profiles[label] = summariseProfile(raw.read_text())
                profiles[label]["raw"] = str(raw.relative_to(REPO))
            else:
                # py-spy needs ptrace rights (CAP_SYS_PTRACE in containers).
                self.notes.append(f"py-spy wrote no profile for {label} (ptrace not permitted?)")
        return profiles


def findPySpy(python: str) -> str | None:
    here = Path(python).parent / "py-spy"
    return str(here) if here.exists() else shutil.which("py-spy")
