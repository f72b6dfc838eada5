"""
The broker paths that keep big rooms and many processes cheap, over a real
C{redis-server}: presence batched per interval, member pages, a turn's
publishes kept in order in one batch, and a health that reflects a
subscription that delivers.
"""

from __future__ import annotations

import json
import re
import signal
import threading
import urllib.request

import pytest

from tests.support.rawws import RawClient, frame
from tests.support.wsclient import open_, recvJSON, recvPresence, recvUntil

pytestmark = [pytest.mark.redis, pytest.mark.slow]


def twoNodes(redisServer, serviceFactory, *extra: str):
    args = ("--broker", redisServer.url + "?heartbeat=0.5", *extra)
    nodes = [serviceFactory(*args), serviceFactory(*args)]
    for node in nodes:
        node.waitForLog(r"connected to Redis at")
    return nodes


def chat(node, room: str, name: str):
    ws = open_(node.url(f"/{room}?name={name}"), "chat")
    ws.welcome = recvJSON(ws)  # type: ignore[attr-defined]
    return ws


def test_a_join_storm_across_nodes_is_a_few_presence_events_with_the_right_count(
        redisServer, serviceFactory):
    """
    Sixty people joining at once over two nodes reach an observer as a few
    presence events (one per node per interval, not one per join), listing
    everyone once, and the last count is the room's size.
    """
    a, b = twoNodes(redisServer, serviceFactory)
    observer = chat(a, "storm", "observer")
    recvPresence(observer, "joined", "observer")
    people: list = []
    lock = threading.Lock()

    def join(node, n: int) -> None:
        ws = chat(node, "storm", f"p{n}")
        with lock:
            people.append(ws)

    threads = [threading.Thread(target=join, args=(a if n % 2 else b, n)) for n in range(60)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(people) == 60
    joined: set[str] = set()
    events = 0
    count = 0
    while len(joined) < 60:
        event = recvUntil(observer, "presence")
        events += 1
        joined |= {m["name"] for m in event["joined"]}
        count = max(count, event["count"])
    assert joined == {f"p{n}" for n in range(60)}
    assert count == 61
    # Joins took well under a few seconds: at most one event per node per
    # quarter second, never one per join.
    assert events <= 30, events
    for ws in people:
        ws.close()
    observer.close()


def test_member_pages_walk_the_whole_room_through_redis(redisServer, serviceFactory):
    """
    With --presence-list 3, a newcomer's welcome has the first page and a
    cursor, and members requests walk the rest: everyone on both nodes is
    listed, the asker alone gets the pages.
    """
    a, b = twoNodes(redisServer, serviceFactory, "--presence-list", "3")
    people = [chat(a if n % 2 else b, "paged", f"m{n}") for n in range(8)]
    newcomer = chat(a, "paged", "new")
    welcome = newcomer.welcome
    assert welcome["count"] == 9
    seen = {m["id"] for m in welcome["members"]}
    cursor = welcome["next"]
    pages = 0
    while cursor is not None:
        newcomer.send(json.dumps({"type": "members", "after": cursor}))
        page = recvUntil(newcomer, "members")
        seen |= {m["id"] for m in page["members"]}
        cursor = page["next"]
        pages += 1
        assert pages < 20
    ids = {ws.welcome["id"] for ws in people} | {welcome["id"]}
    assert seen == ids and pages >= 1
    assert len({i.split("-")[0] for i in ids}) == 2  # ids name their node
    people[0].send(json.dumps({"message": "end"}))
    assert recvUntil(people[1], "message")["message"] == "end"
    for ws in (*people, newcomer):
        ws.close()


def test_a_burst_keeps_its_order_through_the_broker(redisServer, serviceFactory):
    """
    Thirty messages written at once (text and binary, one TCP write) reach a
    member on the other node in the order sent, the text ones with
    consecutive seqs.
    """
    a, b = twoNodes(redisServer, serviceFactory, "--max-messages-per-second", "0")
    listener = chat(b, "burst", "listener")
    with RawClient(a.port, "/burst?name=sender", protocol="chat") as sender:
        recvPresence(listener, "joined", "sender")
        sent = []
        burst = b""
        for n in range(30):
            if n % 5 == 4:
                sent.append(b"bin%d" % n)
                burst += frame(0x2, sent[-1])
            else:
                sent.append(f"t{n}")
                burst += frame(0x1, json.dumps({"message": f"t{n}"}).encode())
        sender.send(burst)
        got, seqs = [], []
        while len(got) < 30:
            message = listener.recv(timeout=10)
            if isinstance(message, bytes):
                got.append(message)
                continue
            event = json.loads(message)
            if event["type"] == "message":
                got.append(event["message"])
                seqs.append(event["seq"])
        assert got == sent
        assert seqs == list(range(seqs[0], seqs[0] + 24))
    listener.close()


def health(node) -> str:
    with urllib.request.urlopen(node.url("/healthz", "http"), timeout=10) as response:
        return response.read().decode()


def brokerGauge(node) -> str:
    with urllib.request.urlopen(node.url("/metrics", "http"), timeout=10) as response:
        return re.search(r"^wsservice_broker_connected (\S+)$", response.read().decode(), re.M).group(1)


def test_health_reports_a_broker_that_stopped_delivering(redisServer, serviceFactory):
    """
    A Redis that stops answering while its connections stay open (SIGSTOP)
    is reported disconnected by /healthz and /metrics within a few
    heartbeats, logged, and connected again once it runs.
    """
    a, _ = twoNodes(redisServer, serviceFactory)
    assert "broker connected" in health(a) and brokerGauge(a) == "1.0"
    redisServer.proc.send_signal(signal.SIGSTOP)
    try:
        a.waitForLog(r"has not delivered this node's own ping", timeout=10)
        assert "broker disconnected" in health(a) and brokerGauge(a) == "0.0"
    finally:
        redisServer.proc.send_signal(signal.SIGCONT)
    assert a.waitFor(lambda: sum("connected to Redis at" in line for line in a.lines) >= 2, 20)
    assert "broker connected" in health(a) and brokerGauge(a) == "1.0"


def test_a_node_back_from_an_outage_resubscribes_many_rooms_in_a_few_commands(
        redisServer, serviceFactory):
    """
    A node with 150 rooms re-subscribes them after a Redis restart in two
    SUBSCRIBE commands (at most 100 channels each), not 150, and every room
    works across nodes again.
    """
    a, b = twoNodes(redisServer, serviceFactory)
    rooms = [f"r{n}" for n in range(150)]
    members = [chat(a, room, "m") for room in rooms]
    redisServer.restart()
    for node in (a, b):
        assert node.waitFor(lambda node=node: sum(
            "connected to Redis at" in line for line in node.lines) >= 2, 20), node.log()
    assert any("150 rooms" in line for line in a.lines)
    stats = redisServer.command("INFO", "commandstats")
    calls = {m.group(1): int(m.group(2))
             for m in re.finditer(r"^cmdstat_(\w+):calls=(\d+)", stats, re.M)}
    assert calls["subscribe"] == 2 + 2, stats  # and each node's ping channel
    counts = redisServer.command("PUBSUB", "NUMSUB", *(f"wss:db0:{{{r}}}:events" for r in rooms))
    assert counts.split()[1::2] == ["1"] * 150
    speaker = chat(b, rooms[-1], "speaker")
    speaker.send(json.dumps({"message": "still here"}))
    assert recvUntil(members[-1], "message")["message"] == "still here"
    for ws in (*members, speaker):
        ws.close()
