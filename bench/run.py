#!/usr/bin/env python3
"""
Benchmark wsservice against the reference Node C{ws} servers, in one run.

    python bench/run.py            # the full run (~6-8 minutes)
    python bench/run.py --quick    # tiny client counts, ~40 s (the smoke test)

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
C{--workers 2} sharing the room through a throwaway redis-server (not
CPU-isolated: see L{WORKERS_PINNING}; skipped without redis-server).
C{--profile} (on by default in the full run when py-spy is installed)
re-runs 1 and 3 on our server under C{py-spy record} and prints the hottest
functions.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import queue
import re
import resource
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))

from tests.support.processes import LOOPBACK, REPO, RedisServer, serviceCommand  # noqa: E402

SERVERS = BENCH / "servers"
TICK = os.sysconf("SC_CLK_TCK")
SERVER_CORE, LOAD_CORE = 0, 1
#: Share of the server core taken by other processes above which a cheap
#: measurement is repeated once.
NOISY = 0.35


class BenchError(RuntimeError):
    pass


# -- processes ----------------------------------------------------------------

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


class Server:
    """
    A server under test in a child process pinned to the server core; its
    output is drained by a thread and kept for error reports.
    """

    #: Start the server as the leader of a new process group (for servers
    #: that fork, so that what is left of them can be killed at once).
    newSession = False

    def __init__(self, name: str, argv: list[str], ready: str, env: dict[str, str] | None = None,
                 pin: bool = True) -> None:
        self.name = name
        self.argv = argv
        self.ready = re.compile(ready)
        self.env = env
        self.pin = pin
        #: The cores the server may run on, whose busy time is watched.
        self.cores: tuple[int, ...] = (SERVER_CORE,) if pin else tuple(sorted(usableCores()))
        self.lines: list[str] = []
        self.port: int | None = None
        self.proc: subprocess.Popen[str] | None = None
        self._portSeen = threading.Event()

    def start(self, timeout: float = 30) -> "Server":
        env = dict(os.environ, PYTHONUNBUFFERED="1", **(self.env or {}))
        self.proc = subprocess.Popen(
            self.argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            text=True, env=env, cwd=str(REPO), start_new_session=self.newSession,
            preexec_fn=childSetup(SERVER_CORE if self.pin else None),
        )
        threading.Thread(target=self._pump, daemon=True).start()
        if not self._portSeen.wait(timeout) or self.port is None:
            self.stop()
            raise BenchError(f"{self.name} did not start:\n" + "\n".join(self.lines[-30:]))
        return self

    def _pump(self) -> None:
        assert self.proc and self.proc.stdout
        for line in self.proc.stdout:
            if len(self.lines) < 2000:
                self.lines.append(line.rstrip())
            self._watch(line)
        self._portSeen.set()

    def _watch(self, line: str) -> None:
        """
        Read one line of the server's output: the ready line gives the port.
        """
        if self.port is None:
            m = self.ready.search(line)
            if m:
                self.port = int(m.group(1))
                self._portSeen.set()

    def processes(self) -> dict[str, list[int]]:
        """
        The processes whose CPU is the server's, by role.
        """
        return {"server": [self.pid]}

    def summary(self) -> dict[str, Any]:
        """
        Figures the server's own output gave during a run, for the results.
        """
        return {}

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def failure(self) -> str:
        """
        Why the server is not L{alive}, for the errors.
        """
        return f"{self.name} exited: " + " | ".join(self.lines[-5:])

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def ourCommand(python: str, serverArgs: Sequence[str] = ()) -> list[str]:
    """
    Our service's command line, as every scenario runs it; C{serverArgs}
    are extra options (C{--server-arg}), e.g. to measure a proposed one.
    """
    return serviceCommand(*LOOPBACK, "--max-connections", "0", "--max-messages-per-second", "0",
                          *serverArgs, python=python)


def ours(python: str, serverArgs: Sequence[str] = ()) -> Server:
    return Server("wsservice", ourCommand(python, serverArgs), r"wsservice starting on '?(\d+)",
                  env={"PYTHONPATH": str(REPO)})


def nodeBroadcast(node: str) -> Server:
    return Server("node-ws broadcast", [node, str(SERVERS / "node_broadcast.js"), "--port", "0"],
                  r"listening (\d+)")


def nodeEcho(node: str) -> Server:
    return Server("node-ws echo", [node, str(SERVERS / "node_echo.js"), "--port", "0"],
                  r"listening (\d+)")


def websocketsEcho(python: str) -> Server:
    return Server("websockets echo", [python, str(SERVERS / "websockets_echo.py"), "--port", "0"],
                  r"listening (\d+)")


#: How scenario 6 places its processes, printed with its results.
WORKERS_PINNING = (
    "scenario 6 is not CPU-isolated: the supervisor, both workers and redis-server run unpinned "
    f"on every core and share core {LOAD_CORE} with the load generator (pinned there as always), "
    "because two workers pinned to one core would measure one core's worth of work.  Its "
    "deliveries/s and latencies are therefore bounded by the machine, not by the service; "
    "its CPU per delivery (supervisor + workers + redis-server) is the meaningful figure."
)


class WorkerPool(Server):
    """
    Our service as C{--workers N} with its own throwaway redis-server as the
    broker: the supervisor, its workers and Redis together are the server
    under test, none of them pinned (see L{WORKERS_PINNING}).  It is ready
    once every worker has said both C{wsservice ready} and C{connected to
    Redis}, so no client reaches a worker that cannot yet share its room.
    """

    newSession = True
    #: Seconds the supervisor gets to stop its workers (each waits up to
    #: --shutdown-timeout, 5 s by default, for its clients).
    stopGrace = 20

    _shared = re.compile(r"workers share \S+ on port (\d+)")
    _workerLine = re.compile(r"\[worker (\d+) pid \d+\] (.*)")
    _died = re.compile(r"worker \d+ died")
    _opened = re.compile(r"\] open \S+ ")

    def __init__(self, python: str, redis: str, workers: int = 2,
                 serverArgs: Sequence[str] = ()) -> None:
        super().__init__(f"wsservice --workers {workers} + Redis", [], ready="",
                         env={"PYTHONPATH": str(REPO)}, pin=False)
        self.python = python
        self.serverArgs = tuple(serverArgs)
        self.workers = workers
        self.redis = RedisServer(redis, preexec=childSetup(None))
        self.sharedPort: int | None = None
        self.readyWorkers: set[int] = set()
        self.connectedWorkers: set[int] = set()
        self.deaths: list[str] = []
        self.opened: Counter[int] = Counter()

    def start(self, timeout: float = 60) -> "Server":
        try:
            self.redis.start()
        except RuntimeError as e:
            raise BenchError(str(e)) from None
        self.argv = [*ourCommand(self.python, self.serverArgs), "--workers", str(self.workers),
                     "--broker", self.redis.url]
        return super().start(timeout)

    def _watch(self, line: str) -> None:
        worker = self._workerLine.search(line)
        if worker:
            index, text = int(worker.group(1)), worker.group(2)
            if self._opened.search(text):
                self.opened[index] += 1
            elif "wsservice ready" in text:
                self.readyWorkers.add(index)
            elif "connected to Redis" in text:
                self.connectedWorkers.add(index)
        elif self._died.search(line):
            self.deaths.append(line.strip())
        elif self.sharedPort is None and (shared := self._shared.search(line)):
            self.sharedPort = int(shared.group(1))
        everyone = set(range(self.workers))
        if (self.port is None and self.sharedPort is not None
                and everyone <= self.readyWorkers and everyone <= self.connectedWorkers):
            self.port = self.sharedPort
            self._portSeen.set()

    def alive(self) -> bool:
        return super().alive() and self.redis.alive() and not self.deaths

    def failure(self) -> str:
        if not super().alive():
            return super().failure()
        if not self.redis.alive():
            return "redis-server exited: " + " | ".join(self.redis.lines[-5:])
        return "; ".join(self.deaths)

    def processes(self) -> dict[str, list[int]]:
        return {"supervisor": [self.pid], "workers": descendants(self.pid),
                "redis": [self.redis.pid]}

    def summary(self) -> dict[str, Any]:
        return {"clients_per_worker": {str(i): self.opened[i] for i in range(self.workers)},
                "worker_deaths": list(self.deaths)}

    def stop(self) -> None:
        try:
            self._stopSupervisor()
        finally:
            self.redis.stop()

    def _stopSupervisor(self) -> None:
        """
        SIGTERM the supervisor, which stops its workers and waits for them;
        whatever is left of its process group afterwards (all of it, if the
        supervisor did not exit in time) is killed.
        """
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(self.stopGrace)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except OSError:
            pass  # the group is empty: everyone exited
        self.proc.wait(10)


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


def oneSided(spread: dict[str, int] | None) -> bool:
    """
    Whether some workers got clients and some none (C{spread} is
    C{clients_per_worker}; all zero means the connection log is off and
    nobody knows).
    """
    counts = list((spread or {}).values())
    return any(counts) and not all(counts)


def _spansWorkers(run: LoadRun) -> bool:
    return not oneSided(run.serverInfo.get("clients_per_worker"))


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


# -- the scenarios ------------------------------------------------------------

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
        return [
            ("ours", lambda: ours(self.python, self.serverArgs),
             {"url": "ws://127.0.0.1:PORT/bench", "protocol": "chat"}),
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
                     f"p99 {ms(r.get('p99_us'))}, lost {r.get('lost')}, server CPU "
                     f"{pct(r['server_cpu_share'])}, loadgen CPU {pct(r.get('loadgen_cpu_share'))}, "
                     f"other load on server core(s) {pct(r['foreign_cpu_share'])}, "
                     f"connect {r.get('connect_s', 0):.1f}s + settle {r.get('settle_s', 0):.1f}s"
                     + spreadNote(r))
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
                    {"url": "ws://127.0.0.1:PORT/bench", "protocol": "chat"})]
        self.notes.append(WORKERS_PINNING)
        out: dict[str, Any] = {"workers": 2, "pinning": WORKERS_PINNING}
        out["fanout"] = self.fanout(p.fanClients, p.fanSeconds, targets=targets)["2 workers"]
        out["fixed_rate"] = self.fanout(p.fanClients, p.rateSeconds, rate=p.rate,
                                        targets=targets)["2 workers"]
        for kind in ("fanout", "fixed_rate"):
            if oneSided(out[kind].get("clients_per_worker")):
                self.notes.append(f"scenario 6 {kind}: every client went to one worker, twice, "
                                  "so the room did not cross Redis")
        return out

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


def summariseProfile(text: str, top: int = 15) -> dict[str, Any]:
    """
    Self and inclusive sample shares per function from py-spy's raw
    (collapsed stacks) output.
    """
    selfs: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    total = 0
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        total += n
        frames = [_frame(f) for f in stack.split(";")]
        selfs[frames[-1]] += n
        for f in set(frames):
            incl[f] += n
    share = lambda c: round(100 * c / total, 1) if total else 0.0  # noqa: E731
    return {
        "samples": total,
        "self": [(f, share(c)) for f, c in selfs.most_common(top)],
        "inclusive": [(f, share(c)) for f, c in incl.most_common(top * 3)],
    }


def _frame(frame: str) -> str:
    """
    C{"sendPreparedMessage (autobahn/websocket/protocol.py)"} as
    C{autobahn/websocket/protocol.py:sendPreparedMessage}.
    """
    m = re.match(r"(.*) \((.*)\)$", frame.strip())
    if not m:
        return frame.strip()
    func, path = m.groups()
    for marker in ("site-packages/", "/lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
            if marker == "/lib/python3":
                path = "stdlib/" + path.split("/", 1)[1]
            break
    else:
        if os.path.isabs(path):
            try:
                path = str(Path(path).relative_to(REPO))
            except ValueError:
                pass
    return f"{path}:{func}"


# -- the report ---------------------------------------------------------------

def num(x: Any, digits: int = 1) -> str:
    """
    A figure for the table and the progress lines: C{digits} decimals below
    1,000, whole with thousands separators above, C{-} for none.
    """
    if x is None:
        return "-"
    if isinstance(x, (int, float)) and abs(x) >= 1000:
        return f"{x:,.0f}"
    return f"{x:.{digits}f}"


def ms(us: Any) -> str:
    """
    Microseconds as milliseconds, C{-} for none.
    """
    return "-" if us is None else f"{us / 1000:.2f} ms"


def pct(x: Any) -> str:
    """
    A share (1.0 is one core, or all) as a whole percentage, C{-} for none.
    """
    return "-" if x is None else f"{100 * x:.0f}%"


def _ratio(a: Any, b: Any) -> str:
    if a is None or b in (None, 0):
        return "-"
    return f"{a / b:.2f}x"


def table(results: dict[str, Any], plan: Plan) -> list[str]:
    rows: list[tuple[str, ...]] = []
    header = ("Scenario / metric", "wsservice", "Node ws", "ours / Node", "Target", "Met")

    def row(label: str, a: Any, b: Any, target: str = "", ok: bool | None = None,
            fmt: Callable[[Any], str] = num) -> None:
        rows.append((label, fmt(a), fmt(b), _ratio(a, b), target,
                     "" if ok is None else ("yes" if ok else "**no**")))

    def ratioOk(a: Any, b: Any, test: Callable[[float], bool]) -> bool | None:
        if a is None or b in (None, 0):
            return None
        return test(a / b)

    fo = results.get("fanout", {})
    o, n = fo.get("ours", {}), fo.get("node", {})
    c = plan.fanClients
    row(f"1 fan-out ({c} clients, {plan.senders} senders): deliveries/s",
        o.get("deliveries_per_s"), n.get("deliveries_per_s"), ">= 1.0x",
        ratioOk(o.get("deliveries_per_s"), n.get("deliveries_per_s"), lambda r: r >= 1.0))
    row("1 fan-out: server CPU per delivery (us)", o.get("cpu_us_per_delivery"),
        n.get("cpu_us_per_delivery"), "<= 0.9x",
        ratioOk(o.get("cpu_us_per_delivery"), n.get("cpu_us_per_delivery"), lambda r: r <= 0.9),
        fmt=lambda x: num(x, 2))
    row("1 fan-out: same + all softirq on the server core (us)",
        o.get("cpu_us_per_delivery_with_softirq"), n.get("cpu_us_per_delivery_with_softirq"),
        "", None, fmt=lambda x: num(x, 2))
    row("1 fan-out: p50 latency", o.get("p50_us"), n.get("p50_us"), fmt=ms)
    row("1 fan-out: p99 latency", o.get("p99_us"), n.get("p99_us"), fmt=ms)
    row("1 fan-out: messages lost", o.get("lost"), n.get("lost"), "0",
        None if o.get("lost") is None else (o.get("lost") == 0), fmt=lambda x: "-" if x is None else str(x))
    row("1 fan-out: server CPU share", o.get("server_cpu_share"), n.get("server_cpu_share"), fmt=pct)
    row("1 fan-out: load generator CPU share", o.get("loadgen_cpu_share"),
        n.get("loadgen_cpu_share"), fmt=pct)
    row("1 fan-out: other load on the server core", o.get("foreign_cpu_share"),
        n.get("foreign_cpu_share"), fmt=pct)
    row("1 fan-out: softirq on the server core (part of other load)",
        o.get("softirq_share"), n.get("softirq_share"), fmt=pct)
    fr = results.get("fixed_rate", {})
    o, n = fr.get("ours", {}), fr.get("node", {})
    row(f"2 fixed {plan.rate:g} msg/s: p50 latency", o.get("p50_us"), n.get("p50_us"), fmt=ms)
    row(f"2 fixed {plan.rate:g} msg/s: p99 latency", o.get("p99_us"), n.get("p99_us"),
        "<= 1.0x", ratioOk(o.get("p99_us"), n.get("p99_us"), lambda r: r <= 1.0), fmt=ms)
    row(f"2 fixed {plan.rate:g} msg/s: messages lost", o.get("lost"), n.get("lost"),
        fmt=lambda x: "-" if x is None else str(x))
    row(f"2 fixed {plan.rate:g} msg/s: server CPU per delivery (us)",
        o.get("cpu_us_per_delivery"), n.get("cpu_us_per_delivery"), fmt=lambda x: num(x, 2))
    ec = results.get("echo", {})
    o, n, w = ec.get("ours", {}), ec.get("node", {}), ec.get("websockets", {})
    row(f"3 echo ({plan.echoClients} clients): round trips/s", o.get("round_trips_per_s"),
        n.get("round_trips_per_s"))
    row("3 echo: server CPU per round trip (us)", o.get("cpu_us_per_round_trip"),
        n.get("cpu_us_per_round_trip"), "<= websockets", None, fmt=lambda x: num(x, 2))
    row("3 echo: p99 latency", o.get("p99_us"), n.get("p99_us"), fmt=ms)
    row("3 echo: server CPU share", o.get("server_cpu_share"), n.get("server_cpu_share"), fmt=pct)
    row("3 echo: load generator CPU share", o.get("loadgen_cpu_share"),
        n.get("loadgen_cpu_share"), fmt=pct)
    row("3 echo: other load on the server core", o.get("foreign_cpu_share"),
        n.get("foreign_cpu_share"), fmt=pct)
    if w:
        rows.append(("3 echo: Python websockets: round trips/s | CPU us/trip | p99",
                     num(w.get("round_trips_per_s")), f"{num(w.get('cpu_us_per_round_trip'), 2)} us",
                     ms(w.get("p99_us")), "ours <= websockets",
                     _yn(o.get("cpu_us_per_round_trip"), w.get("cpu_us_per_round_trip"),
                         lambda a, b: a <= b)))
        rows.append(("3 echo: ours / websockets, CPU per round trip", "", "",
                     _ratio(o.get("cpu_us_per_round_trip"), w.get("cpu_us_per_round_trip")), "", ""))
    idl = results.get("idle", {})
    o, n = idl.get("ours", {}), idl.get("node", {})
    row(f"4 idle ({plan.idleClients} connections): handshakes/s", o.get("handshakes_per_s"),
        n.get("handshakes_per_s"), ">= 5,000/s",
        None if o.get("handshakes_per_s") is None else o["handshakes_per_s"] >= 5000)
    row("4 idle: server memory per connection (KiB)", o.get("kib_per_connection"),
        n.get("kib_per_connection"), "<= 6 KiB",
        None if o.get("kib_per_connection") is None else o["kib_per_connection"] <= 6)
    row("4 idle: server CPU per handshake (us)", o.get("server_cpu_us_per_handshake"),
        n.get("server_cpu_us_per_handshake"))
    row("4 idle: load generator CPU share", o.get("loadgen_cpu_share"),
        n.get("loadgen_cpu_share"), fmt=pct)
    rows.append((f"4 idle: rooms (ours) / server", f"{o.get('rooms', '-')} rooms", "1 (no rooms)",
                 "", "", ""))
    sc = results.get("scale", {})
    oursCost = {k: v.get("ours", {}).get("cpu_us_per_delivery") for k, v in sc.items()}
    base = oursCost.get(str(plan.scaleClients[0]))
    for k, v in sc.items():
        a = v.get("ours", {}).get("cpu_us_per_delivery")
        b = v.get("node", {}).get("cpu_us_per_delivery")
        flat = None if a is None or not base else abs(a / base - 1) <= 0.15
        row(f"5 cost per delivery at {k} clients (us)", a, b,
            f"within 15% of {plan.scaleClients[0]}-client cost", flat, fmt=lambda x: num(x, 2))
        row(f"5 same + softirq on the server core at {k} clients (us)",
            v.get("ours", {}).get("cpu_us_per_delivery_with_softirq"),
            v.get("node", {}).get("cpu_us_per_delivery_with_softirq"), fmt=lambda x: num(x, 2))
    for k, v in sc.items():
        row(f"5 deliveries/s at {k} clients", v.get("ours", {}).get("deliveries_per_s"),
            v.get("node", {}).get("deliveries_per_s"))
    for k, v in sc.items():
        row(f"5 clients connected (of {k})", v.get("ours", {}).get("clients"),
            v.get("node", {}).get("clients"), str(k),
            None if v.get("ours", {}).get("clients") is None else v["ours"]["clients"] == int(k),
            fmt=lambda x: "-" if x is None else str(x))
        row(f"5 other load on the server core at {k} clients",
            v.get("ours", {}).get("foreign_cpu_share"), v.get("node", {}).get("foreign_cpu_share"),
            fmt=pct)
    for k, v in sc.items():
        row(f"5 setup (connect + settle) at {k} clients (s)",
            _sum(v.get("ours", {}), "connect_s", "settle_s"),
            _sum(v.get("node", {}), "connect_s", "settle_s"))
    _workersRows(results, plan, row, rows.append)
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    fmtRow = lambda r: "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |"  # noqa: E731
    return [fmtRow(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|",
            *map(fmtRow, rows)]


def _workersRows(results: dict[str, Any], plan: Plan, row: Callable[..., None],
                 add: Callable[[tuple[str, ...]], None]) -> None:
    """
    Scenario 6's rows: C{--workers 2} with Redis against Node, and against
    our single process in scenarios 1 and 2 of the same run ("2 workers / 1
    process"; "-" when those did not run).
    """
    w6 = results.get("workers2_redis") or {}
    if w6.get("skipped"):
        add(("6 --workers 2 with Redis", f"skipped: {w6['skipped']}", "", "", "", ""))
        return
    us = lambda x: num(x, 2)  # noqa: E731
    lost = lambda x: "-" if x is None else str(x)  # noqa: E731

    def perProcess(label: str, workers: Any, single: Any) -> None:
        add((f"{label}, 2 workers / 1 process", "", "", _ratio(workers, single), "", ""))

    w, o, n = (w6.get("fanout") or {}, results.get("fanout", {}).get("ours", {}),
               results.get("fanout", {}).get("node", {}))
    row(f"6 2 workers + Redis, fan-out ({plan.fanClients} clients, {plan.senders} senders): "
        "deliveries/s", w.get("deliveries_per_s"), n.get("deliveries_per_s"))
    perProcess("6 fan-out: deliveries/s", w.get("deliveries_per_s"), o.get("deliveries_per_s"))
    row("6 fan-out: CPU per delivery, supervisor + workers + Redis (us)",
        w.get("cpu_us_per_delivery"), n.get("cpu_us_per_delivery"), fmt=us)
    perProcess("6 fan-out: CPU per delivery", w.get("cpu_us_per_delivery"),
               o.get("cpu_us_per_delivery"))
    split = w.get("cpu_us_per_delivery_by_process") or {}
    add(("6 fan-out: CPU per delivery: supervisor / workers / Redis (us)",
         " / ".join(us(split.get(k)) for k in ("supervisor", "workers", "redis")), "", "", "", ""))
    row("6 fan-out: p50 latency", w.get("p50_us"), n.get("p50_us"), fmt=ms)
    row("6 fan-out: p99 latency", w.get("p99_us"), n.get("p99_us"), fmt=ms)
    perProcess("6 fan-out: p99 latency", w.get("p99_us"), o.get("p99_us"))
    row("6 fan-out: messages lost", w.get("lost"), n.get("lost"), "0",
        None if w.get("lost") is None else w["lost"] == 0, fmt=lost)
    row("6 fan-out: server CPU, all processes (100% = one core)", w.get("server_cpu_share"),
        n.get("server_cpu_share"), fmt=pct)
    row("6 fan-out: load generator CPU share", w.get("loadgen_cpu_share"),
        n.get("loadgen_cpu_share"), fmt=pct)
    row("6 fan-out: other load on all cores (not isolated)", w.get("foreign_cpu_share"), None,
        fmt=pct)
    spread = w.get("clients_per_worker")
    add(("6 fan-out: clients per worker", _spreadCell(w), "", "", "every worker > 0",
         "" if not any((spread or {}).values()) else ("**no**" if oneSided(spread) else "yes")))
    setup = lambda r: _sum(r, "connect_s", "settle_s")  # noqa: E731
    row("6 fan-out: setup (connect + settle) (s)", setup(w), setup(n))
    perProcess("6 fan-out: setup (connect + settle)", setup(w), setup(o))
    w, o, n = (w6.get("fixed_rate") or {}, results.get("fixed_rate", {}).get("ours", {}),
               results.get("fixed_rate", {}).get("node", {}))
    row(f"6 fixed {plan.rate:g} msg/s: p50 latency", w.get("p50_us"), n.get("p50_us"), fmt=ms)
    row(f"6 fixed {plan.rate:g} msg/s: p99 latency", w.get("p99_us"), n.get("p99_us"), fmt=ms)
    perProcess(f"6 fixed {plan.rate:g} msg/s: p99 latency", w.get("p99_us"), o.get("p99_us"))
    row(f"6 fixed {plan.rate:g} msg/s: messages lost", w.get("lost"), n.get("lost"), fmt=lost)
    row(f"6 fixed {plan.rate:g} msg/s: CPU per delivery, all processes (us)",
        w.get("cpu_us_per_delivery"), n.get("cpu_us_per_delivery"), fmt=us)
    perProcess(f"6 fixed {plan.rate:g} msg/s: CPU per delivery", w.get("cpu_us_per_delivery"),
               o.get("cpu_us_per_delivery"))


def _spreadCell(r: dict[str, Any]) -> str:
    """
    How many clients each worker accepted, as C{"489 / 511"}.
    """
    spread = r.get("clients_per_worker")
    return " / ".join(str(v) for v in spread.values()) if spread else "-"


def spreadNote(r: dict[str, Any]) -> str:
    """
    The clients per worker for a progress line, or nothing for one process.
    """
    return f", clients per worker {_spreadCell(r)}" if r.get("clients_per_worker") else ""


def _sum(d: dict[str, Any], *keys: str) -> float | None:
    vals = [d.get(k) for k in keys]
    return None if any(v is None for v in vals) else sum(vals)


def _yn(a: Any, b: Any, test: Callable[[float, float], bool]) -> str:
    if a is None or b is None:
        return ""
    return "yes" if test(a, b) else "**no**"


def profileReport(profiles: dict[str, Any]) -> list[str]:
    out = []
    for label, prof in profiles.items():
        out.append(f"py-spy, our server under {label} ({prof['samples']} samples):")
        out.append("  self time:")
        out.extend(f"    {share:5.1f}%  {f}" for f, share in prof["self"])
        out.append("  inclusive, below the reactor loop (wsservice/, autobahn/, twisted/web):")
        shown = 0
        for f, share in prof["inclusive"]:
            if share < 85 and f.startswith(("wsservice/", "autobahn/", "twisted/web/")) and shown < 20:
                out.append(f"    {share:5.1f}%  {f}")
                shown += 1
    return out


# -- setup --------------------------------------------------------------------

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


def findPySpy(python: str) -> str | None:
    here = Path(python).parent / "py-spy"
    return str(here) if here.exists() else shutil.which("py-spy")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny client counts, ~40 s")
    parser.add_argument("--profile", dest="profile", action="store_true", default=None,
                        help="also profile our server with py-spy (default: on in full runs)")
    parser.add_argument("--no-profile", dest="profile", action="store_false")
    parser.add_argument("--python", default=sys.executable,
                        help="interpreter for wsservice and the websockets reference")
    parser.add_argument("--json", type=Path, default=None, help="where to write the raw figures")
    parser.add_argument("--scenarios", default="1,2,3,4,5,6",
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
    plan = QUICK if args.quick else FULL
    bench = Bench(plan, args.python, node, log, serverArgs=args.server_arg)
    log(f"bench: {'quick' if args.quick else 'full'} run, server on core {SERVER_CORE}, "
        f"load generator on core {LOAD_CORE}, node {subprocess.run([node, '--version'], capture_output=True, text=True).stdout.strip()}")
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
    lines = ["", f"## Results ({'quick' if args.quick else 'full'} run, {elapsed:.0f} s)", "",
             *table(bench.results, plan)]
    if profiles:
        lines += ["", *profileReport(profiles)]
    if bench.notes:
        lines += ["", "Notes:", *(f"  - {n}" for n in bench.notes)]
    if bench.errors:
        lines += ["", "Errors:", *(f"  - {e}" for e in bench.errors)]
    else:
        lines += ["", "Errors: none"]
    print("\n".join(lines), flush=True)
    out = args.json or BENCH / f"results-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json"
    out.write_text(json.dumps({"plan": plan.__dict__, "results": bench.results,
                               "profiles": profiles, "errors": bench.errors,
                               "notes": bench.notes,
                               "elapsed_s": elapsed}, indent=1, default=str))
    return 1 if bench.errors else 0


if __name__ == "__main__":
    sys.exit(main())
