"""
The backend API and recovery across processes: two service nodes (or
--workers) on one real redis-server, API calls on one node acting on
members of both, clients recovering on another node than the one they
left, and what happens when Redis is down or lost its data.
"""

from __future__ import annotations

import json
import os
import signal

import pytest

from tests.scale.test_workers import (  # noqa: F401 (workers is a fixture)
    oneOnEach, twoWorkers, workerOf, workerPIDs, workers,
)
from tests.support.api import API, keyFile
from tests.support.wsclient import closeCode, open_, recvJSON, recvUntil

pytestmark = [pytest.mark.redis, pytest.mark.slow]


@pytest.fixture
def nodes(redisServer, serviceFactory, tmp_path):
    """
    Two nodes sharing one Redis, each serving the API with the same key.
    """
    keys = keyFile(tmp_path)
    args = ("--broker", redisServer.url + "?heartbeat=0.5", "--api-key-file", keys,
            "--presence-interval", "0.05")
    a, b = serviceFactory(*args), serviceFactory(*args)
    for node in (a, b):
        node.waitForLog(r"connected to Redis at")
    return a, b


def api(node) -> API:
    return API(node.url("", scheme="http"))


def chat(node, room: str, name: str, since: dict | None = None):
    query = f"?name={name}"
    if since is not None:
        query += f"&since={since['seq']}&epoch={since['epoch']}"
    ws = open_(node.url(f"/{room}{query}"), "chat")
    ws.welcome = recvJSON(ws)  # type: ignore[attr-defined]
    return ws


def reconnected(node, timeout: float = 20) -> None:
    """
    Wait for C{node}'s second "connected to Redis" (the first was its start).
    """
    assert node.waitFor(lambda: sum("connected to Redis at" in line for line in node.lines) >= 2,
                        timeout), node.log()


def say(ws, text: str) -> dict:
    ws.send(json.dumps({"message": text}))
    while True:
        event = recvUntil(ws, "message")
        if event["message"] == text:
            return event


def test_a_publish_on_one_node_reaches_members_on_both_and_retries_dedupe_anywhere(nodes):
    """
    A publish through node A's API reaches members on A and B with the seq
    it answered; the same idempotency key through node B's API is a
    duplicate, delivered to nobody.
    """
    a, b = nodes
    alice, bob = chat(a, "kitchen", "alice"), chat(b, "kitchen", "bob")
    first = api(a).publish("kitchen", "from the backend", idempotency_key="order-7")
    for ws in (alice, bob):
        got = recvUntil(ws, "message")
        assert (got["seq"], got["message"]) == (first["seq"], "from the backend")
    again = api(b).publish("kitchen", "from the backend", idempotency_key="order-7")
    assert again == {**first, "duplicate": True}
    marker = api(b).publish("kitchen", "marker")
    for ws in (alice, bob):
        assert recvUntil(ws, "message")["seq"] == marker["seq"] == first["seq"] + 1


def test_rooms_count_members_on_every_node(nodes):
    """
    GET /api/rooms and /api/rooms/{room} on either node count the members of
    both; /api/info lists both nodes.
    """
    a, b = nodes
    members = [chat(a, "hall", "a1"), chat(a, "hall", "a2"), chat(b, "hall", "b1")]
    for node in (a, b):
        status, room = api(node).get("/api/rooms/hall")
        assert status == 200 and (room["count"], room["users"]) == (3, 3)
        assert sorted(m["name"] for m in room["members"]) == ["a1", "a2", "b1"]
        status, listing = api(node).get("/api/rooms?prefix=ha")
        assert [r["room"] for r in listing["rooms"]] == ["hall"]
    status, info = api(a).get("/api/info")
    assert status == 200 and len(info["nodes"]) == 2 and info["node"] in info["nodes"]
    assert info["broker"] == "connected" and members


def test_a_disconnect_through_one_node_closes_a_connection_on_the_other(nodes):
    """
    POST /api/connections/{id}/disconnect on node A closes the connection
    node B holds, with the code and reason given; both nodes were told.
    """
    a, b = nodes
    target, bystander = chat(b, "room", "target"), chat(b, "room", "bystander")
    status, answer = api(a).post(f"/api/connections/{target.welcome['id']}/disconnect",
                                 {"code": 4000, "reason": "reconnect please"})
    assert (status, answer) == (200, {"nodes": 2})
    assert closeCode(target) == (4000, "reconnect please")
    assert say(bystander, "still here")["message"] == "still here"


def test_a_client_recovers_on_another_node_than_the_one_it_left(nodes):
    """
    Alice leaves node A; Bob talks on node B; Alice comes back through node
    B with since= and gets exactly the events she missed.
    """
    a, b = nodes
    alice, bob = chat(a, "kitchen", "alice"), chat(b, "kitchen", "bob")
    seen = say(alice, "bye for now")
    alice.close()
    sent = [say(bob, f"while away {i}") for i in range(3)]
    back = chat(b, "kitchen", "alice", since=seen)
    resumed = back.welcome
    assert resumed["type"] == "resumed" and resumed["recovered"] is True, resumed
    missed = [recvJSON(back) for _ in range(resumed["missed"])]
    assert [e["seq"] for e in missed] == list(range(seen["seq"] + 1, resumed["seq"] + 1))
    assert [e["seq"] for e in missed if e["type"] == "message"] == [m["seq"] for m in sent]


def test_lost_redis_data_is_a_new_epoch_and_an_honest_unrecovered(nodes, redisServer):
    """
    After Redis loses everything (restarted without persistence), a room's
    next event starts a new epoch, and a client coming back with the old
    one is told its gap could not be recovered.
    """
    a, b = nodes
    alice = chat(a, "fragile", "alice")
    seen = say(alice, "before the loss")
    alice.close()
    redisServer.restart()
    for node in (a, b):
        reconnected(node)
    bob = chat(b, "fragile", "bob")
    after = say(bob, "after the loss")
    back = chat(a, "fragile", "alice", since=seen)
    assert back.welcome["type"] == "resumed" and back.welcome["recovered"] is False
    assert recvJSON(back)["epoch"] == after["epoch"] != seen["epoch"]


def test_the_api_says_503_while_redis_is_down_and_works_when_it_is_back(nodes, redisServer):
    """
    With Redis down, a publish is refused with 503 and Retry-After (never
    half-done); once a node is reconnected the same call succeeds.
    """
    a, _ = nodes
    redisServer.kill()
    a.waitForLog(r"lost Redis at")
    status, body, headers = api(a).call("POST", "/api/rooms/kitchen/publish", {"message": "x"})
    assert (status, body["error"]["code"], headers["Retry-After"]) == (503, "broker_unavailable", "1")
    assert api(a).get("/api/rooms")[0] == 503
    redisServer.start()
    reconnected(a)
    assert api(a).publish("kitchen", "back")["seq"] >= 1


def test_a_client_of_a_killed_worker_recovers_what_it_missed(workers):
    """
    With --workers 2, the worker holding Alice is SIGKILLed; Bob joins and
    talks; Alice reconnects,
    to whichever worker the kernel picks, and recovers every event.
    """
    alice = chat(workers, "kitchen", "alice")
    seen = say(alice, "hello")
    victim = workerOf(workers, alice.welcome["id"])
    pid = workerPIDs(workers)[victim]
    os.kill(pid, signal.SIGKILL)
    assert closeCode(alice)[0] in (None, 1006)
    bob = chat(workers, "kitchen", "bob")
    sent = [say(bob, f"while she was gone {i}") for i in range(3)]
    back = chat(workers, "kitchen", "alice", since=seen)
    assert back.welcome["recovered"] is True, back.welcome
    missed = [recvJSON(back) for _ in range(back.welcome["missed"])]
    assert [e["seq"] for e in missed] == list(range(seen["seq"] + 1, back.welcome["seq"] + 1))
    assert [e["seq"] for e in missed if e["type"] == "message"] == [m["seq"] for m in sent]


@pytest.fixture
def apiWorkers(redisServer, tmp_path):
    """
    --workers 2 --broker with the API on the shared port.
    """
    with twoWorkers(redisServer, "--api-key-file", keyFile(tmp_path)) as service:
        yield service


def test_with_workers_the_api_on_any_worker_reaches_members_on_both(apiWorkers):
    """
    With --workers 2, API calls land on either worker (the kernel picks) and
    each publish reaches the members of both, in one seq order; /api/info
    says how many workers there are.
    """
    members = oneOnEach(apiWorkers, "shared")
    caller = api(apiWorkers)
    published = [caller.publish("shared", f"n{i}")["seq"] for i in range(6)]
    for ws in members.values():
        got = [recvUntil(ws, "message") for _ in published]
        assert [m["seq"] for m in got] == published
    status, info = caller.get("/api/info")
    assert status == 200 and info["workers"] == 2 and len(info["nodes"]) == 2
