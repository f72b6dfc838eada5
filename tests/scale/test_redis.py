"""
End-to-end tests of rooms across service processes through a real
C{redis-server}: two C{twistd wsservice --broker} nodes with chat clients on
each, and Redis killed and restarted under them.
"""

from __future__ import annotations

import json
import re
import signal
import threading

import pytest

from tests.support.wsclient import open_, recvJSON, recvPresence, recvUntil

pytestmark = [pytest.mark.redis, pytest.mark.slow]


def chat(node, room: str, name: str):
    """
    Open a chat connection to C{room} on C{node} and read its welcome.
    """
    ws = open_(node.url(f"/{room}?name={name}"), "chat")
    welcome = recvJSON(ws)
    assert welcome["type"] == "welcome", welcome
    ws.welcome = welcome  # type: ignore[attr-defined]
    return ws


def say(ws, message: str) -> None:
    ws.send(json.dumps({"message": message}))


def messages(ws, count: int) -> list[dict]:
    """
    The next C{count} chat messages C{ws} receives, skipping other events.
    """
    return [recvUntil(ws, "message") for _ in range(count)]


def waitForCount(node, pattern: str, count: int, timeout: float = 15) -> None:
    """
    Wait until C{node} has logged C{count} lines matching C{pattern}.
    """
    regex = re.compile(pattern)
    if not node.waitFor(lambda: sum(bool(regex.search(l)) for l in node.lines) >= count, timeout):
        raise AssertionError(f"fewer than {count} lines matching {pattern!r}:\n{node.log()}")


@pytest.fixture
def nodes(redisServer, serviceFactory):
    """
    Two service processes sharing one Redis.
    """
    args = ("--broker", redisServer.url + "?heartbeat=0.5", "--history", "5")
    a = serviceFactory(*args)
    b = serviceFactory(*args)
    for node in (a, b):
        node.waitForLog(r"connected to Redis at")
    return a, b


def test_messages_reach_every_member_on_every_node_once_in_one_order(nodes):
    """
    Messages said on both nodes reach every member on both nodes exactly
    once, all in the same seq order.
    """
    a, b = nodes
    alice, bob = chat(a, "kitchen", "alice"), chat(b, "kitchen", "bob")
    carol = chat(a, "kitchen", "carol")
    recvPresence(alice, "joined", "carol")
    for i in range(10):
        say(alice if i % 2 else bob, f"m{i}")
    seen = [messages(ws, 10) for ws in (alice, bob, carol)]
    orders = [[(m["seq"], m["message"]) for m in got] for got in seen]
    assert orders[0] == orders[1] == orders[2]
    assert sorted(m for _, m in orders[0]) == sorted(f"m{i}" for i in range(10))
    seqs = [s for s, _ in orders[0]]
    assert seqs == sorted(seqs) and len(set(seqs)) == 10
    for ws in (alice, bob, carol):
        with pytest.raises(TimeoutError):
            while True:  # anything left must not be a repeated message
                assert recvJSON(ws, timeout=0.3)["type"] != "message"
        ws.close()


def test_concurrent_senders_on_both_nodes_give_everyone_one_identical_stream(nodes):
    """
    With ten members spread over two nodes all sending at once, every member
    receives all 200 messages exactly once, in the same order, seqs
    strictly increasing.
    """
    a, b = nodes
    people = [chat(a if i % 2 else b, "crowd", f"p{i}") for i in range(10)]
    last = people[-1]
    recvPresence(people[0], "joined", last.welcome["you"])
    threads = [threading.Thread(target=lambda ws=ws, i=i: [say(ws, f"p{i}-{n}") for n in range(20)])
               for i, ws in enumerate(people)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    streams = [[(m["seq"], m["message"]) for m in messages(ws, 200)] for ws in people]
    assert all(stream == streams[0] for stream in streams)
    seqs = [seq for seq, _ in streams[0]]
    assert seqs == sorted(set(seqs))
    assert sorted(m for _, m in streams[0]) == sorted(f"p{i}-{n}" for i in range(10) for n in range(20))
    for i in range(10):  # each sender's own messages stay in the order sent
        own = [m for _, m in streams[0] if m.startswith(f"p{i}-")]
        assert own == [f"p{i}-{n}" for n in range(20)]
    for ws in people:
        ws.close()


def test_history_in_redis_is_bounded_in_bytes_as_well_as_count(redisServer, serviceFactory):
    """
    Through the broker, a room's history keeps at most --max-message-size
    bytes (the README's promise, as in one process): a newcomer on either
    node gets the newest messages that fit, and Redis holds no more.
    """
    args = ("--broker", redisServer.url, "--history", "50", "--max-message-size", "2000")
    a, b = serviceFactory(*args), serviceFactory(*args)
    for node in (a, b):
        node.waitForLog(r"connected to Redis at")
    alice = chat(a, "bulky", "alice")
    for i in range(20):
        say(alice, f"b{i:02d}-" + "x" * 300)
    messages(alice, 20)
    bob = chat(b, "bulky", "bob")
    history = recvUntil(bob, "history")["messages"]
    assert 0 < len(history) < 7
    assert history[-1]["message"].startswith("b19-")
    stored = redisServer.command("LRANGE", "wss:{bulky}:history", "0", "-1").splitlines()
    assert len(stored) == len(history)
    assert sum(len(line.encode()) for line in stored) <= 2000


def test_history_and_presence_are_the_same_on_every_node(nodes, redisServer):
    """
    A newcomer on either node gets the same capped history and sees the
    members of both nodes in its welcome; the room's keys in Redis expire
    when it goes idle.
    """
    a, b = nodes
    alice = chat(a, "hall", "alice")
    for i in range(7):
        say(alice, f"h{i}")
    messages(alice, 7)
    bob = chat(b, "hall", "bob")
    history = recvUntil(bob, "history")["messages"]
    assert [m["message"] for m in history] == ["h2", "h3", "h4", "h5", "h6"]
    for key in ("wss:{hall}:seq", "wss:{hall}:history"):
        assert 0 < int(redisServer.command("PTTL", key)) <= 24 * 3600 * 1000
    assert {m["name"] for m in bob.welcome["members"]} == {"alice", "bob"}
    carol = chat(a, "hall", "carol")
    assert recvUntil(carol, "history")["messages"] == history
    assert {m["name"] for m in carol.welcome["members"]} == {"alice", "bob", "carol"}
    joined, _ = recvPresence(alice, "joined", "carol")
    assert joined["count"] == 3
    bob.close()
    left, _ = recvPresence(alice, "left", "bob")
    assert left["count"] == 2
    alice.close()
    carol.close()


def test_binary_frames_and_renames_cross_nodes(nodes):
    """
    A binary frame reaches the other node's members as binary, and a rename
    on one node shows in the members a newcomer on the other node sees.
    """
    a, b = nodes
    alice, bob = chat(a, "bin", "alice"), chat(b, "bin", "bob")
    recvPresence(alice, "joined", "bob")
    alice.send(b"\x00\xffraw")
    frame = bob.recv(timeout=10)
    while not isinstance(frame, bytes):
        frame = bob.recv(timeout=10)
    assert frame == b"\x00\xffraw"
    alice.send(json.dumps({"type": "rename", "name": "alicia"}))
    assert recvPresence(bob, "renamed", "alicia")[0]["message"] == "alice is now alicia"
    carol = chat(b, "bin", "carol")
    assert {m["name"] for m in carol.welcome["members"]} == {"alicia", "bob", "carol"}
    for ws in (alice, bob, carol):
        ws.close()


def test_a_joiner_sees_no_gap_and_no_repeat_between_history_and_live(nodes):
    """
    While one node publishes continuously, a joiner on the other node gets
    history then live events with consecutive seqs: nothing lost, nothing
    twice.
    """
    a, b = nodes
    talker = chat(a, "busy", "talker")
    recvPresence(talker, "joined", "talker")
    for i in range(30):
        say(talker, f"t{i}")
    messages(talker, 30)
    for i in range(30, 60):
        say(talker, f"t{i}")  # still being published while the listener joins
    listener = chat(b, "busy", "listener")
    messages(talker, 30)
    history = recvUntil(listener, "history")["messages"]
    last = listener.welcome["seq"]
    assert history[-1]["seq"] <= last
    live = []
    seen = [m["message"] for m in history]
    while "t59" not in seen:
        event = recvJSON(listener)
        if event["type"] in ("message", "presence"):
            live.append(event)
            seen.append(event["message"])
    seqs = [e["seq"] for e in live]
    assert seqs == list(range(last + 1, last + 1 + len(seqs))), seqs
    talker.close()
    listener.close()


def test_a_crashed_nodes_members_are_removed(nodes, redisServer):
    """
    When a node is killed, its members leave their rooms within the
    documented bound (a leave event, gone from snapshots and from Redis),
    even in rooms no surviving node serves.
    """
    a, b = nodes
    alice = chat(a, "crash", "alice")
    chat(b, "crash", "bob")
    chat(b, "lonely", "zoe")  # a room with no members on the surviving node
    recvPresence(alice, "joined", "bob")
    b.stop(signal.SIGKILL)
    # heartbeat 0.5 s: TTL 1.5 s plus one sweep interval, plus the presence
    # interval.
    _, left = recvPresence(alice, "left", "bob", timeout=5)
    assert left["reason"] == "node lost"
    carol = chat(a, "crash", "carol")
    assert {m["name"] for m in carol.welcome["members"]} == {"alice", "carol"}
    a.waitForLog(r"member \S+ of room lonely removed")
    assert redisServer.command("HGETALL", "wss:{lonely}:members") == ""
    alice.close()
    carol.close()


def brokerHealth(node) -> tuple[str, str, str]:
    """
    What /healthz and /metrics say of the broker: (status word, state,
    wsservice_broker_connected).
    """
    import re
    import urllib.request

    with urllib.request.urlopen(node.url("/healthz", "http"), timeout=10) as response:
        health = response.read().decode()
    with urllib.request.urlopen(node.url("/metrics", "http"), timeout=10) as response:
        gauge = re.search(r"^wsservice_broker_connected (\S+)$", response.read().decode(), re.M)
    state = re.search(r"broker (\w+)", health)
    return health.split(":")[0], state.group(1) if state else "", gauge.group(1) if gauge else ""


def test_redis_restarted_mid_chat_delivery_resumes(nodes, redisServer):
    """
    After Redis is killed and restarted, cross-node delivery resumes by
    itself, messages said during the outage reach the other node, and the
    log has no tracebacks.
    """
    a, b = nodes
    alice, bob = chat(a, "resume", "alice"), chat(b, "resume", "bob")
    say(alice, "before")
    before = messages(bob, 1)[0]
    assert before["message"] == "before"
    redisServer.kill()
    a.waitForLog(r"lost Redis at")
    b.waitForLog(r"lost Redis at")
    say(alice, "during")
    # Local delivery goes on.  ("before" may still be on its way on the
    # pub/sub socket, so the two can arrive in either order.)
    assert {m["message"] for m in messages(alice, 2)} == {"before", "during"}
    assert brokerHealth(a) == ("ok", "disconnected", "0.0")
    redisServer.start()
    for node in (a, b):
        waitForCount(node, r"connected to Redis at", 2)
    assert brokerHealth(a) == ("ok", "connected", "1.0")
    during = messages(bob, 1)[0]
    assert during["message"] == "during"
    say(bob, "after")
    assert messages(alice, 1)[0]["message"] == "after"
    after = messages(bob, 1)[0]
    assert after["message"] == "after"
    # Redis forgot the room's seq; it still never goes backwards.
    assert before["seq"] < during["seq"] < after["seq"]
    for node in (a, b):
        assert "Traceback" not in node.log()
        assert sum("lost Redis" in line for line in node.lines) == 1
    alice.close()
    bob.close()


def test_a_gracefully_stopped_nodes_members_leave_at_once(nodes, redisServer):
    """
    SIGTERM to a node closes its clients, whose leave events still reach the
    other node, and leaves nothing of it in Redis.
    """
    a, b = nodes
    alice = chat(a, "tidy", "alice")
    chat(b, "tidy", "bob")
    recvPresence(alice, "joined", "bob")
    assert b.stop(signal.SIGTERM) == 0
    _, left = recvPresence(alice, "left", "bob", timeout=5)
    assert "reason" not in left
    members = redisServer.command("HGETALL", "wss:{tidy}:members")
    assert "bob" not in members and "alice" in members
    assert "Traceback" not in b.log()
    alice.close()


def test_unreachable_redis_at_start_is_logged_once_and_rooms_work_locally(
        redisServer, serviceFactory):
    """
    A service whose Redis is down at start still serves rooms on its own,
    logs the outage once, and joins the others when Redis comes up.
    """
    redisServer.kill()
    args = ("--broker", redisServer.url + "?heartbeat=0.5")
    a = serviceFactory(*args)
    a.waitForLog(r"Redis at .* is unreachable")
    alice, ann = chat(a, "solo", "alice"), chat(a, "solo", "ann")
    say(alice, "local")
    assert messages(ann, 1)[0]["message"] == "local"
    redisServer.start()
    a.waitForLog(r"connected to Redis at", timeout=15)
    b = serviceFactory(*args)
    b.waitForLog(r"connected to Redis at")
    bob = chat(b, "solo", "bob")
    assert {m["name"] for m in bob.welcome["members"]} >= {"alice", "ann", "bob"}
    say(bob, "hello across")
    assert [m["message"] for m in messages(alice, 2)] == ["local", "hello across"]
    assert sum("unreachable" in line for line in a.lines) == 1
    for ws in (alice, ann, bob):
        ws.close()
