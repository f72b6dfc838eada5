"""
What a run prints: the table of figures and ratios (ours / Node) with the
targets, the formatting shared with the progress lines, and the summary of
py-spy's profiles.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from bench.targets import oneSided
from tests.support.processes import REPO

if TYPE_CHECKING:
    from bench.scenarios import Bench, Plan


def resultsText(bench: Bench, profiles: dict[str, Any], kind: str, elapsed: float) -> list[str]:
    """
    What a C{kind} ("quick" or "full") run prints at its end: the table, the
    profiles, the notes, and the errors (C{Errors: none}, which the smoke
    test looks for, when there are none).
    """
    lines = ["", f"## Results ({kind} run, {elapsed:.0f} s)", "", *table(bench.results, bench.plan)]
    if profiles:
        lines += ["", *profileReport(profiles)]
    if bench.notes:
        lines += ["", "Notes:", *(f"  - {n}" for n in bench.notes)]
    if bench.errors:
        lines += ["", "Errors:", *(f"  - {e}" for e in bench.errors)]
    else:
        lines += ["", "Errors: none"]
    return lines


def writeResults(path: Path, bench: Bench, profiles: dict[str, Any], elapsed: float) -> None:
    """
    The raw figures of a run, with its plan, profiles, notes and errors, as
    JSON at C{path}.
    """
    path.write_text(json.dumps({"plan": bench.plan.__dict__, "results": bench.results,
                                "profiles": profiles, "errors": bench.errors,
                                "notes": bench.notes,
                                "elapsed_s": elapsed}, indent=1, default=str))


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


def cost(us: Any) -> str:
    """
    A cost in microseconds of CPU per unit of work, to two decimals.
    """
    return num(us, 2)


def whole(x: Any) -> str:
    """
    A count (clients, messages lost) as it is, C{-} for none.
    """
    return "-" if x is None else str(x)


def pct(x: Any) -> str:
    """
    A share (1.0 is one core, or all) as a whole percentage, C{-} for none.
    """
    return "-" if x is None else f"{100 * x:.0f}%"


def integrity(r: dict[str, Any]) -> str:
    """
    What a fan-out's receivers missed or got wrong, as C{"lost / duplicated /
    out of order / room seq gaps"}: per sender's own numbering, and (our
    chat only, C{-} elsewhere) the room's C{seq}, which grows by one per
    event for every member.
    """
    if r.get("lost") is None:
        return "-"
    return " / ".join(whole(r.get(k)) if r.get(k) is not None else "-"
                      for k in ("lost", "duplicated", "out_of_order", "room_seq_gaps"))


def integrityOk(r: dict[str, Any]) -> bool | None:
    """
    Whether L{integrity} found nothing wrong (C{None}: not measured).
    """
    if r.get("lost") is None:
        return None
    return all(not r.get(k) for k in ("lost", "duplicated", "out_of_order", "room_seq_gaps"))


#: The columns of L{integrity}, for the table's labels.
INTEGRITY = "lost / duplicated / out of order (seq gaps) / room seq gaps"


def _ratio(a: Any, b: Any) -> str:
    # A share measured as 0 comes back as a rounding residue such as 6e-15.
    if a is None or b is None or abs(b) < 1e-9:
        return "-"
    return f"{a / b:.2f}x"


#: Each scenario's key in the results, so the table leaves out the rows of
#: scenarios that did not run (C{--scenarios}).
SCENARIO_KEYS = {"fanout": 1, "fixed_rate": 2, "echo": 3, "idle": 4, "scale": 5,
                 "workers2_redis": 6, "room_handshakes": 7, "echo_handshakes": 8,
                 "reconnect_storm": 9, "auth_handshakes": 10, "api_publish": 11,
                 "recovery_storm": 12}


def table(results: dict[str, Any], plan: Plan) -> list[str]:
    rows: list[tuple[str, ...]] = []
    header = ("Scenario / metric", "wsservice", "Node ws", "ours / Node", "Target", "Met")

    def row(label: str, a: Any, b: Any, target: str = "", ok: bool | None = None,
            fmt: Callable[[Any], str] = num) -> None:
        rows.append((label, fmt(a), fmt(b), _ratio(a, b), target,
                     "" if ok is None else ("yes" if ok else "**no**")))

    def checked(label: str, o: dict[str, Any], n: dict[str, Any]) -> None:
        rows.append((f"{label}: {INTEGRITY}", integrity(o), integrity(n), "", "all 0",
                     _met(integrityOk(o))))

    fo = results.get("fanout", {})
    o, n = fo.get("ours", {}), fo.get("node", {})
    c = plan.fanClients
    row(f"1 fan-out ({c} clients, {plan.senders} senders): deliveries/s",
        o.get("deliveries_per_s"), n.get("deliveries_per_s"), ">= 1.0x",
        _ratioOk(o.get("deliveries_per_s"), n.get("deliveries_per_s"), lambda r: r >= 1.0))
    row("1 fan-out: server CPU per delivery (us)", o.get("cpu_us_per_delivery"),
        n.get("cpu_us_per_delivery"), "<= 0.9x",
        _ratioOk(o.get("cpu_us_per_delivery"), n.get("cpu_us_per_delivery"), lambda r: r <= 0.9),
        fmt=cost)
    row("1 fan-out: same + all softirq on the server core (us)",
        o.get("cpu_us_per_delivery_with_softirq"), n.get("cpu_us_per_delivery_with_softirq"),
        "", None, fmt=cost)
    row("1 fan-out: p50 latency", o.get("p50_us"), n.get("p50_us"), fmt=ms)
    row("1 fan-out: p99 latency", o.get("p99_us"), n.get("p99_us"), fmt=ms)
    checked("1 fan-out", o, n)
    row("1 fan-out: filling the room (until every count is right; Node: last greeting) (s)",
        o.get("fill_s"), n.get("fill_s"), fmt=seconds)
    row("1 fan-out: load generator CPU share while filling", o.get("fill_loadgen_cpu_share"),
        n.get("fill_loadgen_cpu_share"), fmt=pct)
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
        "<= 1.0x", _ratioOk(o.get("p99_us"), n.get("p99_us"), lambda r: r <= 1.0), fmt=ms)
    checked(f"2 fixed {plan.rate:g} msg/s", o, n)
    row(f"2 fixed {plan.rate:g} msg/s: server CPU per delivery (us)",
        o.get("cpu_us_per_delivery"), n.get("cpu_us_per_delivery"), fmt=cost)
    ec = results.get("echo", {})
    o, n, w = ec.get("ours", {}), ec.get("node", {}), ec.get("websockets", {})
    row(f"3 echo ({plan.echoClients} clients): round trips/s", o.get("round_trips_per_s"),
        n.get("round_trips_per_s"))
    row("3 echo: server CPU per round trip (us)", o.get("cpu_us_per_round_trip"),
        n.get("cpu_us_per_round_trip"), "<= websockets", None, fmt=cost)
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
    rows.append(("4 idle: rooms (ours) / server", f"{o.get('rooms', '-')} rooms", "1 (no rooms)",
                 "", "", ""))
    sc = results.get("scale", {})
    oursCost = {k: v.get("ours", {}).get("cpu_us_per_delivery") for k, v in sc.items()}
    base = oursCost.get(str(plan.scaleClients[0]))
    for k, v in sc.items():
        a = v.get("ours", {}).get("cpu_us_per_delivery")
        b = v.get("node", {}).get("cpu_us_per_delivery")
        flat = None if a is None or not base else abs(a / base - 1) <= 0.15
        row(f"5 cost per delivery at {k} clients (us)", a, b,
            f"within 15% of {plan.scaleClients[0]}-client cost", flat, fmt=cost)
        row(f"5 same + softirq on the server core at {k} clients (us)",
            v.get("ours", {}).get("cpu_us_per_delivery_with_softirq"),
            v.get("node", {}).get("cpu_us_per_delivery_with_softirq"), fmt=cost)
    for k, v in sc.items():
        row(f"5 deliveries/s at {k} clients", v.get("ours", {}).get("deliveries_per_s"),
            v.get("node", {}).get("deliveries_per_s"))
    for k, v in sc.items():
        checked(f"5 at {k} clients", v.get("ours", {}), v.get("node", {}))
    for k, v in sc.items():
        row(f"5 clients connected (of {k})", v.get("ours", {}).get("clients"),
            v.get("node", {}).get("clients"), str(k),
            None if v.get("ours", {}).get("clients") is None else v["ours"]["clients"] == int(k),
            fmt=whole)
        row(f"5 other load on the server core at {k} clients",
            v.get("ours", {}).get("foreign_cpu_share"), v.get("node", {}).get("foreign_cpu_share"),
            fmt=pct)
    for k, v in sc.items():
        row(f"5 setup (connect + settle) at {k} clients (s)",
            _sum(v.get("ours", {}), "connect_s", "settle_s"),
            _sum(v.get("node", {}), "connect_s", "settle_s"))
    _workersRows(results, plan, row, rows.append, checked)
    _handshakeRows(results, plan, row, rows.append)
    _authRows(results.get("auth_handshakes"), plan, row, rows.append)
    _apiRows(results.get("api_publish"), plan, row, rows.append)
    _recoveryRows(results.get("recovery_storm"), plan, rows.append)
    ran = {str(number) for key, number in SCENARIO_KEYS.items() if key in results}
    rows = [r for r in rows if r[0].split(" ", 1)[0] in ran]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    fmtRow = lambda r: "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |"  # noqa: E731
    return [fmtRow(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|",
            *map(fmtRow, rows)]


def _workersRows(results: dict[str, Any], plan: Plan, row: Callable[..., None],
                 add: Callable[[tuple[str, ...]], None],
                 checked: Callable[[str, dict[str, Any], dict[str, Any]], None]) -> None:
    """
    Scenario 6's rows: C{--workers 2} with Redis against Node, and against
    our single process in the same run ("2 workers / 1 process", both
    figures and their ratio, with the issue's targets).
    """
    w6 = results.get("workers2_redis") or {}
    if w6.get("skipped"):
        add(("6 --workers 2 with Redis", f"skipped: {w6['skipped']}", "", "", "", ""))
        return
    one = w6.get("one_process") or {}

    def perProcess(label: str, workers: Any, single: Any, fmt: Callable[[Any], str],
                   target: str = "", limit: float | None = None, unit: str = "") -> None:
        ok = None if limit is None or workers is None or not single else workers / single <= limit
        add((f"{label}, 2 workers / 1 process{unit}", f"{fmt(workers)} / {fmt(single)}", "",
             _ratio(workers, single), target, _met(ok)))

    w, o, n = (w6.get("fanout") or {}, one.get("fanout") or {},
               results.get("fanout", {}).get("node", {}))
    row(f"6 2 workers + Redis, fan-out ({plan.fanClients} clients, {plan.senders} senders): "
        "deliveries/s", w.get("deliveries_per_s"), n.get("deliveries_per_s"))
    perProcess("6 fan-out: deliveries/s", w.get("deliveries_per_s"), o.get("deliveries_per_s"), num)
    row("6 fan-out: CPU per delivery, supervisor + workers + Redis (us)",
        w.get("cpu_us_per_delivery"), n.get("cpu_us_per_delivery"), fmt=cost)
    perProcess("6 fan-out: CPU per delivery, all processes incl. Redis",
               w.get("cpu_us_per_delivery"), o.get("cpu_us_per_delivery"), cost, "<= 1.3x", 1.3,
               " (us)")
    split = w.get("cpu_us_per_delivery_by_process") or {}
    add(("6 fan-out: CPU per delivery: supervisor / workers / Redis (us)",
         " / ".join(cost(split.get(k)) for k in ("supervisor", "workers", "redis")),
         "", "", "", ""))
    row("6 fan-out: p50 latency", w.get("p50_us"), n.get("p50_us"), fmt=ms)
    row("6 fan-out: p99 latency", w.get("p99_us"), n.get("p99_us"), fmt=ms)
    perProcess("6 fan-out: p99 latency", w.get("p99_us"), o.get("p99_us"), ms, "<= 2x", 2)
    checked("6 fan-out", w, n)
    row("6 fan-out: server CPU, all processes (100% = one core)", w.get("server_cpu_share"),
        n.get("server_cpu_share"), fmt=pct)
    row("6 fan-out: load generator CPU share", w.get("loadgen_cpu_share"),
        n.get("loadgen_cpu_share"), fmt=pct)
    row("6 fan-out: other load on all cores (not isolated)", w.get("foreign_cpu_share"), None,
        fmt=pct)
    spread = w.get("clients_per_worker")
    add(("6 fan-out: clients per worker", _spreadCell(w), "", "", "every worker > 0",
         "" if not any((spread or {}).values()) else ("**no**" if oneSided(spread) else "yes")))
    row(f"6 filling the room ({plan.fanClients} joining, until every count is right; Node: "
        "last greeting) (s)", w.get("fill_s"), n.get("fill_s"), fmt=seconds)
    perProcess("6 filling the room", w.get("fill_s"), o.get("fill_s"), seconds, "<= 1.5x", 1.5,
               " (s)")
    row("6 filling the room: load generator CPU share", w.get("fill_loadgen_cpu_share"),
        n.get("fill_loadgen_cpu_share"), fmt=pct)
    w, o, n = (w6.get("fixed_rate") or {}, one.get("fixed_rate") or {},
               results.get("fixed_rate", {}).get("node", {}))
    row(f"6 fixed {plan.rate:g} msg/s: p50 latency", w.get("p50_us"), n.get("p50_us"), fmt=ms)
    row(f"6 fixed {plan.rate:g} msg/s: p99 latency", w.get("p99_us"), n.get("p99_us"), fmt=ms)
    perProcess(f"6 fixed {plan.rate:g} msg/s: p99 latency", w.get("p99_us"), o.get("p99_us"), ms,
               "<= 2x", 2)
    checked(f"6 fixed {plan.rate:g} msg/s", w, n)
    row(f"6 fixed {plan.rate:g} msg/s: CPU per delivery, all processes (us)",
        w.get("cpu_us_per_delivery"), n.get("cpu_us_per_delivery"), fmt=cost)
    perProcess(f"6 fixed {plan.rate:g} msg/s: CPU per delivery", w.get("cpu_us_per_delivery"),
               o.get("cpu_us_per_delivery"), cost, unit=" (us)")
    row(f"6 fixed {plan.rate:g} msg/s: load generator CPU share", w.get("loadgen_cpu_share"),
        n.get("loadgen_cpu_share"), fmt=pct)


def _handshakeRows(results: dict[str, Any], plan: Plan, row: Callable[..., None],
                   add: Callable[[tuple[str, ...]], None]) -> None:
    """
    Scenarios 7, 8 and 9: connections as fast as the server takes them (into
    one chat room, and echo), and a reconnect storm; our service runs with
    its default options in all three.
    """
    limit = 250_000
    room = results.get("room_handshakes")
    if room is not None:
        o, n = room.get("ours", {}), room.get("node", {})
        label = f"7 one room, {plan.roomClients} clients"
        row(f"{label} ({plan.handshakeConcurrency} in flight, ours with default options): "
            "handshakes/s", o.get("handshakes_per_s"), n.get("handshakes_per_s"), ">= 0.5x",
            _ratioOk(o.get("handshakes_per_s"), n.get("handshakes_per_s"), lambda r: r >= 0.5))
        row(f"7 one room: failed connections (of {plan.roomClients})", o.get("failed"),
            n.get("failed"), "0", _zero(o.get("failed")), fmt=whole)
        row("7 one room: handshake latency p50 (TCP connect to welcome or greeting)",
            o.get("p50_us"), n.get("p50_us"), fmt=ms)
        row("7 one room: handshake latency p99", o.get("p99_us"), n.get("p99_us"), "<= 250 ms",
            _atMost(o.get("p99_us"), limit), fmt=ms)
        row("7 one room: last welcome until every member's count is right (s)",
            o.get("count_right_s"), None, "every count right", _zero(o.get("wrong_counts")),
            fmt=seconds)
        add(("7 one room: members with a wrong final count / room seq gaps",
             f"{whole(o.get('wrong_counts'))} / {whole(o.get('room_seq_gaps'))}", "-", "",
             "0 / 0", _met(_zero(o.get("wrong_counts"), o.get("room_seq_gaps")))))
        row("7 one room: presence events per member", o.get("presence_events_per_member"), None)
        row("7 one room: server CPU per handshake (us)", o.get("server_cpu_us_per_handshake"),
            n.get("server_cpu_us_per_handshake"))
        row("7 one room: server CPU share", o.get("server_cpu_share"),
            n.get("server_cpu_share"), fmt=pct)
        row("7 one room: load generator CPU share", o.get("loadgen_cpu_share"),
            n.get("loadgen_cpu_share"), fmt=pct)
        row("7 one room: other load on the server core", o.get("foreign_cpu_share"),
            n.get("foreign_cpu_share"), fmt=pct)
    echo = results.get("echo_handshakes")
    if echo is not None:
        o, n, w = echo.get("ours", {}), echo.get("node", {}), echo.get("websockets", {})
        row(f"8 echo, {plan.echoConnections} connections ({plan.handshakeConcurrency} in flight): "
            "handshakes/s", o.get("handshakes_per_s"), n.get("handshakes_per_s"))
        row(f"8 echo connections: failed (of {plan.echoConnections})", o.get("failed"),
            n.get("failed"), "0", _zero(o.get("failed")), fmt=whole)
        row("8 echo connections: handshake latency p50 (TCP connect to 101)", o.get("p50_us"),
            n.get("p50_us"), fmt=ms)
        row("8 echo connections: handshake latency p99", o.get("p99_us"), n.get("p99_us"),
            "<= 250 ms", _atMost(o.get("p99_us"), limit), fmt=ms)
        row("8 echo connections: server CPU per handshake (us)",
            o.get("server_cpu_us_per_handshake"), n.get("server_cpu_us_per_handshake"))
        row("8 echo connections: load generator CPU share", o.get("loadgen_cpu_share"),
            n.get("loadgen_cpu_share"), fmt=pct)
        row("8 echo connections: other load on the server core", o.get("foreign_cpu_share"),
            n.get("foreign_cpu_share"), fmt=pct)
        if w:
            add(("8 echo connections: Python websockets: handshakes/s | p99 | failed",
                 num(w.get("handshakes_per_s")), ms(w.get("p99_us")), whole(w.get("failed")),
                 "", ""))
            add(("8 echo connections: Python websockets: CPU us/handshake | loadgen | other",
                 num(w.get("server_cpu_us_per_handshake")), pct(w.get("loadgen_cpu_share")),
                 pct(w.get("foreign_cpu_share")), "", ""))
            add(("8 echo connections: ours / websockets, handshakes/s", "", "",
                 _ratio(o.get("handshakes_per_s"), w.get("handshakes_per_s")), ">= 1.0x",
                 _met(_ratioOk(o.get("handshakes_per_s"), w.get("handshakes_per_s"),
                               lambda r: r >= 1.0))))
            add(("8 echo connections: ours / websockets, p99 handshake latency", "", "",
                 _ratio(o.get("p99_us"), w.get("p99_us")), "", ""))
    storm = results.get("reconnect_storm")
    if storm is not None:
        o, n = storm.get("ours", {}), storm.get("node", {})
        how = o.get("drop") or n.get("drop") or "-"
        row(f"9 reconnect storm, {plan.stormClients} members (dropped: {how}, all at once): "
            "drop until all are back (s)", o.get("back_s"), n.get("back_s"), fmt=seconds)
        row("9 storm: failed reconnects", o.get("failed"), n.get("failed"), "0",
            _zero(o.get("failed")), fmt=whole)
        row("9 storm: reconnect latency p50 (TCP connect to welcome or greeting)",
            o.get("p50_us"), n.get("p50_us"), fmt=ms)
        row("9 storm: reconnect latency p99", o.get("p99_us"), n.get("p99_us"), fmt=ms)
        row("9 storm: drop until every member's count is right (s)", o.get("count_right_s"),
            None, "every count right", _zero(o.get("wrong_counts")), fmt=seconds)
        add(("9 storm: members with a wrong final count / room seq gaps",
             f"{whole(o.get('wrong_counts'))} / {whole(o.get('room_seq_gaps'))}", "-", "",
             "0 / 0", _met(_zero(o.get("wrong_counts"), o.get("room_seq_gaps")))))
        row("9 storm: server CPU share, drop until all are back", o.get("server_cpu_share"),
            n.get("server_cpu_share"), fmt=pct)
        row("9 storm: load generator CPU share, drop until all are back",
            o.get("loadgen_cpu_share"), n.get("loadgen_cpu_share"), fmt=pct)
        row("9 storm: filling the room first, failed of it", o.get("fill_failed"),
            n.get("fill_failed"), "0", _zero(o.get("fill_failed")), fmt=whole)


def _versus(add: Callable[[tuple[str, ...]], None], label: str, a: Any, b: Any,
            fmt: Callable[[Any], str], target: str = "", ok: bool | None = None) -> None:
    """
    A row comparing two runs of our own service in the same run (a variant
    and its reference): both figures as C{"a / b"} and their ratio.
    """
    add((label, f"{fmt(a)} / {fmt(b)}", "", _ratio(a, b), target, _met(ok)))


def _each(runs: list[dict[str, Any]], key: str, fmt: Callable[[Any], str]) -> str:
    """
    One figure of several runs, as C{"a / b / c"}.
    """
    return " / ".join(fmt(r.get(key)) for r in runs)


def _authRows(auth: dict[str, Any] | None, plan: Plan, row: Callable[..., None],
              add: Callable[[tuple[str, ...]], None]) -> None:
    """
    Scenario 10: handshakes carrying a token, HS256 and RS256 each against
    the same clients with no auth (the reference, in the same run).
    """
    if auth is None:
        return
    none, hs, rs = (auth.get(k, {}) for k in ("none", "HS256", "RS256"))
    row(f"10 tokens, {plan.authClients} chat clients in {plan.authRooms} rooms "
        f"({plan.handshakeConcurrency} in flight), no auth: handshakes/s",
        none.get("handshakes_per_s"), None)
    for name, r in (("HS256", hs), ("RS256", rs)):
        _versus(add, f"10 {name} / no auth: handshakes/s", r.get("handshakes_per_s"),
                none.get("handshakes_per_s"), num)
    row("10 no auth: server CPU per handshake (us)", none.get("server_cpu_us_per_handshake"),
        None)
    for name, r in (("HS256", hs), ("RS256", rs)):
        _versus(add, f"10 {name} / no auth: server CPU per handshake (us)",
                r.get("server_cpu_us_per_handshake"), none.get("server_cpu_us_per_handshake"),
                num)
    for q in ("p50", "p99"):
        row(f"10 no auth: handshake latency {q} (TCP connect to welcome)", none.get(f"{q}_us"),
            None, fmt=ms)
        for name, r in (("HS256", hs), ("RS256", rs)):
            _versus(add, f"10 {name} / no auth: handshake latency {q}", r.get(f"{q}_us"),
                    none.get(f"{q}_us"), ms)
    runs = [none, hs, rs]
    add((f"10 failed connections (of {plan.authClients}), no auth / HS256 / RS256",
         _each(runs, "failed", whole), "", "", "0 / 0 / 0",
         _met(_zero(*(r.get("failed") for r in runs)))))
    add(("10 welcomes naming the right user (none: no user), no auth / HS256 / RS256",
         _each(runs, "identified", whole), "", "", f"{plan.authClients} each",
         _met(None if any(r.get("identified") is None for r in runs)
              else all(r["identified"] == plan.authClients for r in runs))))
    add(("10 load generator CPU share, no auth / HS256 / RS256",
         _each(runs, "loadgen_cpu_share", pct), "", "", "", ""))
    add(("10 other load on the server core, no auth / HS256 / RS256",
         _each(runs, "foreign_cpu_share", pct), "", "", "", ""))


def _apiRows(api: dict[str, Any] | None, plan: Plan, row: Callable[..., None],
             add: Callable[[tuple[str, ...]], None]) -> None:
    """
    Scenario 11: the backend API publishing into one room, on one process,
    and on C{--workers 2} with Redis against that one process.
    """
    if api is None:
        return
    o = api.get("one_process") or {}
    row(f"11 API publish into a room of {plan.apiSubscribers} ({plan.apiInFlight} calls in "
        "flight, kept alive), one process: publishes/s", o.get("publishes_per_s"), None)
    row("11 one process: deliveries/s", o.get("deliveries_per_s"), None)
    row("11 one process: server CPU per publish (us)", o.get("cpu_us_per_publish"), None,
        fmt=cost)
    row("11 one process: API call latency p50", o.get("api_p50_us"), None, fmt=ms)
    row("11 one process: API call latency p99", o.get("api_p99_us"), None, fmt=ms)
    row("11 one process: API call to delivery latency p50", o.get("p50_us"), None, fmt=ms)
    row("11 one process: API call to delivery latency p99", o.get("p99_us"), None, fmt=ms)
    _publishChecks(add, "11 one process", o)
    row("11 one process: server CPU share", o.get("server_cpu_share"), None, fmt=pct)
    row("11 one process: load generator CPU share", o.get("loadgen_cpu_share"), None, fmt=pct)
    row("11 one process: other load on the server core", o.get("foreign_cpu_share"), None,
        fmt=pct)
    w = api.get("workers") or {}
    if w.get("skipped"):
        add(("11 --workers 2 with Redis", f"skipped: {w['skipped']}", "", "", "", ""))
        return
    label = "11 2 workers + Redis"
    _versus(add, f"{label}: publishes/s, 2 workers / 1 process", w.get("publishes_per_s"),
            o.get("publishes_per_s"), num)
    _versus(add, f"{label}: CPU per publish, all processes, 2 workers / 1 process (us)",
            w.get("cpu_us_per_publish"), o.get("cpu_us_per_publish"), cost)
    split = w.get("cpu_us_per_publish_by_process") or {}
    add((f"{label}: CPU per publish: supervisor / workers / Redis (us)",
         " / ".join(cost(split.get(k)) for k in ("supervisor", "workers", "redis")),
         "", "", "", ""))
    for key, what in (("api_p50_us", "API call latency p50"),
                      ("api_p99_us", "API call latency p99"),
                      ("p50_us", "API call to delivery latency p50"),
                      ("p99_us", "API call to delivery latency p99")):
        _versus(add, f"{label}: {what}, 2 workers / 1 process", w.get(key), o.get(key), ms)
    _publishChecks(add, label, w)
    spread = w.get("clients_per_worker")
    add((f"{label}: members per worker", _spreadCell(w), "", "", "every worker > 0",
         "" if not any((spread or {}).values()) else ("**no**" if oneSided(spread) else "yes")))
    row(f"{label}: load generator CPU share", w.get("loadgen_cpu_share"), None, fmt=pct)
    row(f"{label}: other load on all cores (not isolated)", w.get("foreign_cpu_share"), None,
        fmt=pct)


def _publishChecks(add: Callable[[tuple[str, ...]], None], label: str,
                   r: dict[str, Any]) -> None:
    """
    What scenario 11's members missed or got wrong, and the API calls that
    were not answered 200.
    """
    add((f"{label}: lost / duplicated / - / room seq gaps", integrity(r), "", "", "all 0",
         _met(integrityOk(r))))
    add((f"{label}: API calls not answered 200 (of {whole(r.get('issued'))})",
         whole(r.get("failed_calls")), "", "", "0", _met(_zero(r.get("failed_calls")))))


def _recoveryRows(storm: dict[str, Any] | None, plan: Plan,
                  add: Callable[[tuple[str, ...]], None]) -> None:
    """
    Scenario 12: a storm that comes back with C{?since=} against the same
    storm coming back as newcomers (the reference), then on C{--workers 2}.
    """
    if storm is None:
        return
    s, n = storm.get("since") or {}, storm.get("plain") or {}
    missed = s.get("missed_published", plan.missedMessages)
    _versus(add, f"12 recovery storm, {plan.stormClients} members ({s.get('drop', '-')}), "
            f"{missed} missed: until all have it (s), since / newcomers",
            s.get("all_recovered_s"), n.get("all_recovered_s"), seconds)
    for q in ("p50", "p99"):
        _versus(add, f"12 storm: per-member recovery {q}, since / newcomers", s.get(f"{q}_us"),
                n.get(f"{q}_us"), ms)
    add((f"12 storm: recovered exactly (every missed seq once, all {missed} messages)",
         f"{whole(s.get('exact'))} of {whole(s.get('clients'))} "
         f"({pct(s.get('exact_share'))})", "", "", "100%",
         _met(None if s.get("exact_share") is None else s["exact_share"] == 1)))
    add(("12 storm: not recovered / failed reconnects / live seq gaps / wrong counts",
         " / ".join(whole(s.get(k)) for k in ("not_recovered", "failed", "live_seq_gaps",
                                               "wrong_counts")),
         "", "", "0 / 0 / 0 / 0",
         _met(_zero(*(s.get(k) for k in ("not_recovered", "failed", "live_seq_gaps",
                                          "wrong_counts"))))))
    add((f"12 storm: newcomers with all {missed} messages in their history",
         f"{whole(n.get('exact'))} of {whole(n.get('clients'))}", "", "", "all",
         _met(None if n.get("exact_share") is None else n["exact_share"] == 1)))
    add(("12 storm: events replayed per member", num(s.get("missed_per_member")), "", "", "",
         ""))
    _versus(add, "12 storm: server CPU per reconnect (us), since / newcomers",
            s.get("server_cpu_us_per_handshake"), n.get("server_cpu_us_per_handshake"), num)
    _versus(add, "12 storm: server CPU share, since / newcomers", s.get("server_cpu_share"),
            n.get("server_cpu_share"), pct)
    _versus(add, "12 storm: load generator CPU share, since / newcomers",
            s.get("loadgen_cpu_share"), n.get("loadgen_cpu_share"), pct)
    w = storm.get("workers") or {}
    if w.get("skipped"):
        add(("12 --workers 2 with Redis", f"skipped: {w['skipped']}", "", "", "", ""))
        return
    label = "12 2 workers + Redis, since"
    _versus(add, f"{label}: until all have it, 2 workers / 1 process (s)",
            w.get("all_recovered_s"), s.get("all_recovered_s"), seconds)
    _versus(add, f"{label}: per-member recovery p99, 2 workers / 1 process", w.get("p99_us"),
            s.get("p99_us"), ms)
    _versus(add, f"{label}: CPU per reconnect, all processes, 2 workers / 1 process (us)",
            w.get("server_cpu_us_per_handshake"),
            s.get("server_cpu_us_per_handshake"), num)
    add((f"{label}: recovered exactly", f"{whole(w.get('exact'))} of "
         f"{whole(w.get('clients'))} ({pct(w.get('exact_share'))})", "", "", "100%",
         _met(None if w.get("exact_share") is None else w["exact_share"] == 1)))
    add((f"{label}: not recovered / failed / live seq gaps / wrong counts",
         " / ".join(whole(w.get(k)) for k in ("not_recovered", "failed", "live_seq_gaps",
                                               "wrong_counts")),
         "", "", "0 / 0 / 0 / 0",
         _met(_zero(*(w.get(k) for k in ("not_recovered", "failed", "live_seq_gaps",
                                          "wrong_counts"))))))
    add((f"{label}: connections opened per worker (fill and storm)", _spreadCell(w), "", "", "",
         ""))


def _ratioOk(a: Any, b: Any, test: Callable[[float], bool]) -> bool | None:
    if a is None or b in (None, 0):
        return None
    return test(a / b)


def _atMost(x: Any, limit: float) -> bool | None:
    return None if x is None else x <= limit


def _zero(*xs: Any) -> bool | None:
    """
    Whether every count in C{xs} is 0 (C{None}: one was not measured).
    """
    return None if any(x is None for x in xs) else not any(xs)


def _met(ok: bool | None) -> str:
    return "" if ok is None else ("yes" if ok else "**no**")


def seconds(x: Any) -> str:
    """
    A duration in seconds, to two decimals, C{-} for none.
    """
    return num(x, 2)


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
