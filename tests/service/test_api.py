"""
The backend API end to end: the real service with --api-key-file, real HTTP
requests over loopback, and real chat clients that see what it publishes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import jwt
import pytest

from tests.support.api import API, KEY, keyFile
from tests.support.processes import REPO, freePort
from tests.support.wsclient import closeCode, open_, recvJSON, recvPresence, recvUntil

SECRET = b"a-test-secret-of-at-least-32-bytes!"


@pytest.fixture
def keys(tmp_path):
    return keyFile(tmp_path)


@pytest.fixture
def served(serviceFactory, keys):
    """
    A service with the API under /api, and an API client of it.
    """

    def start(*args: str):
        service = serviceFactory("--api-key-file", keys, "--presence-interval", "0.05", *args)
        return service, API(service.url(scheme="http"))

    return start


def chat(service, room: str, name: str, query: str = ""):
    ws = open_(service.url(f"/{room}?name={name}{query}"), "chat")
    ws.welcome = recvJSON(ws)  # type: ignore[attr-defined]
    assert ws.welcome["type"] == "welcome", ws.welcome
    return ws


def test_a_published_message_reaches_every_member_once_and_stays_for_newcomers(served):
    """
    POST /api/rooms/{room}/publish reaches every member of the room as a
    chat message with the seq the API answered; a retry with the same
    idempotency_key is answered as a duplicate and delivered to nobody; a
    newcomer finds it in the history.
    """
    service, api = served()
    alice, bob = chat(service, "kitchen", "alice"), chat(service, "kitchen", "bob")
    published = api.publish("kitchen", "deploy at 18:00", name="ops", data={"level": 2},
                            idempotency_key="deploy-1")
    assert published["duplicate"] is False and published["room"] == "kitchen"
    for ws in (alice, bob):
        got = recvUntil(ws, "message")
        assert (got["name"], got["message"], got["data"], got["source"]) == (
            "ops", "deploy at 18:00", {"level": 2}, "api")
        assert (got["seq"], got["epoch"]) == (published["seq"], published["epoch"])
    again = api.publish("kitchen", "deploy at 18:00", name="ops", idempotency_key="deploy-1")
    assert again == {**published, "duplicate": True}
    marker = api.publish("kitchen", "after the retry")
    for ws in (alice, bob):
        assert recvUntil(ws, "message")["seq"] == marker["seq"] == published["seq"] + 1
    carol = chat(service, "kitchen", "carol")
    history = recvUntil(carol, "history")
    assert [m["message"] for m in history["messages"]] == ["deploy at 18:00", "after the retry"]


def test_a_broadcast_reaches_each_room_once(served):
    """
    POST /api/broadcast publishes into every room named, once each, and
    answers with one result per room.
    """
    service, api = served()
    a, b = chat(service, "a", "x"), chat(service, "b/c", "y")
    status, answer = api.post("/api/broadcast", {"rooms": ["a", "b/c", "a", "empty"],
                                                 "message": "maintenance"})
    assert status == 200
    assert [r["room"] for r in answer["results"]] == ["a", "b/c", "empty"]
    assert recvUntil(a, "message")["message"] == recvUntil(b, "message")["message"] == "maintenance"
    status, answer = api.post("/api/broadcast", {"rooms": [f"r{i}" for i in range(1001)],
                                                 "message": "x"})
    assert status == 400 and "1 to 1000" in answer["error"]["message"]


def test_rooms_are_listed_a_page_at_a_time_and_described(served):
    """
    GET /api/rooms pages through rooms by name with prefix, after and
    limit; GET /api/rooms/{room} has its counts and members; an unknown room
    is 404.
    """
    service, api = served()
    for i in range(5):
        api.publish(f"team-{i}", "hello")
    api.publish("other", "hello")
    seen, after = [], None
    while True:
        status, page = api.get("/api/rooms?prefix=team-&limit=2" + (f"&after={after}" if after else ""))
        assert status == 200 and len(page["rooms"]) <= 2
        seen += [r["room"] for r in page["rooms"]]
        after = page["next"]
        if after is None:
            break
    assert seen == [f"team-{i}" for i in range(5)]
    alice, again = chat(service, "team-0", "alice"), chat(service, "team-0", "alice2")
    status, room = api.get("/api/rooms/team-0")
    assert status == 200
    assert (room["count"], room["users"], room["seq"]) == (2, 2, 1)
    assert sorted(m["name"] for m in room["members"]) == ["alice", "alice2"]
    status, missing = api.get("/api/rooms/nowhere")
    assert status == 404 and missing["error"]["code"] == "no_room"


def test_history_since_says_whether_it_is_complete(served):
    """
    GET /api/rooms/{room}/history?since= returns the logged events after
    since; with --recovery 3 an older since is answered with what is left
    and complete false.
    """
    service, api = served("--recovery", "3")
    seqs = [api.publish("log", f"m{i}")["seq"] for i in range(5)]
    status, recent = api.get(f"/api/rooms/log/history?since={seqs[2]}")
    assert status == 200 and recent["complete"] is True
    assert [e["message"] for e in recent["events"]] == ["m3", "m4"]
    status, old = api.get("/api/rooms/log/history?since=0&limit=10")
    assert old["complete"] is False and [e["seq"] for e in old["events"]] == seqs[2:]
    assert old["seq"] == seqs[-1] and old["epoch"] == recent["epoch"]


def test_without_a_valid_key_every_endpoint_is_401_but_the_document_is_open(served, keys):
    """
    No Authorization, another scheme, or a wrong key get 401 with
    WWW-Authenticate and an error document; /api/openapi.json needs no key.
    """
    service, api = served()
    for key, headers in [(None, {}), (None, {"Authorization": f"Basic {KEY}"}),
                         ("wrong-key-0123456789", {})]:
        caller = API(api.base, key)
        status, body, got = caller.call("POST", "/api/rooms/kitchen/publish", {"message": "x"},
                                        headers=headers)
        assert status == 401 and body["error"]["code"] == "unauthorized"
        assert got["WWW-Authenticate"].startswith("Bearer")
    status, document = API(api.base, None).get("/api/openapi.json")
    assert status == 200 and document["openapi"].startswith("3.")
    assert "/api/rooms/{room}/publish" in document["paths"]


def test_a_key_is_rotated_by_editing_its_file_without_a_restart(served, keys):
    """
    Adding a key to the key file opens the API to it at once; removing the
    old one closes it to the old one.  A broken edit keeps the last keys.
    """
    service, api = served()
    new = "the-next-key-abcdefghijklmnop"
    with open(keys, "a") as f:
        f.write(new + "\n")
    assert API(api.base, new).get("/api/info")[0] == 200
    assert api.get("/api/info")[0] == 200
    with open(keys, "w") as f:
        f.write(new + "\n")
    assert api.get("/api/info")[0] == 401
    with open(keys, "w") as f:
        f.write("short\n")
    assert API(api.base, new).get("/api/info")[0] == 200
    service.waitForLog(r"API keys kept as they were: .*at least 16")


@pytest.mark.parametrize("method, path, body, status, code", [
    ("POST", "/api/rooms/kitchen/publish", b"not json", 400, "bad_json"),
    ("POST", "/api/rooms/kitchen/publish", b"[1, 2]", 400, "bad_json"),
    ("POST", "/api/rooms/kitchen/publish", b'{"message": 7}', 400, "bad_field"),
    ("POST", "/api/rooms/kitchen/publish", b'{"message": "\\ud800"}', 400, "bad_field"),
    ("POST", "/api/rooms/kitchen/publish", b'{"history": "yes"}', 400, "bad_field"),
    ("POST", "/api/rooms/" + "r" * 65 + "/publish", b"{}", 400, "bad_room"),
    ("POST", "/api/rooms/kitchen%2F/publish", b"{}", 400, "bad_room"),
    ("POST", "/api/rooms/%FF/publish", b"{}", 400, "bad_path"),
    ("POST", "/api/rooms/kitchen/publish", b'{"message": "' + b"x" * 2000 + b'"}', 413, "too_large"),
    ("GET", "/api/rooms?limit=0", None, 400, "bad_query"),
    ("GET", "/api/rooms?limit=abc", None, 400, "bad_query"),
    ("GET", "/api/rooms/kitchen/history?since=-1", None, 400, "bad_query"),
    ("POST", "/api/users/u1/disconnect", b'{"code": 1001}', 400, "bad_field"),
    ("POST", "/api/users/u1/disconnect", b'{"reason": "' + b"r" * 124 + b'"}', 400, "bad_field"),
    ("GET", "/api/rooms/kitchen/publish", None, 405, "method_not_allowed"),
    ("GET", "/api/nothing/here", None, 404, "not_found"),
], ids=["garbage", "array", "message-type", "surrogate", "history-type", "long-room",
        "slash-room", "not-utf8", "too-large", "limit-0", "limit-word", "since-negative",
        "bad-code", "long-reason", "wrong-method", "unknown-path"])
def test_bad_requests_get_the_status_and_error_code_that_fit(served, method, path, body,
                                                              status, code):
    """
    Every malformed request is answered with its status and an error
    document naming the problem, and the service carries on.
    """
    service, api = served("--max-message-size", "1000")
    got, answer, _ = api.call(method, path, raw=body)
    assert (got, answer["error"]["code"]) == (status, code), answer
    assert api.get("/api/info")[0] == 200


def test_a_body_over_the_bound_is_refused_before_it_is_stored(served):
    """
    A request body over twice --max-message-size (plus 64 KiB) is answered
    with 413 as soon as its length is known, declared or chunked.
    """
    service, api = served("--max-message-size", "1000")
    got, answer, _ = api.call("POST", "/api/rooms/kitchen/publish", raw=b"x" * 100_000)
    assert got == 413
    chunks = (b"y" * 10_000 for _ in range(10))
    got, answer, _ = api.call("POST", "/api/rooms/kitchen/publish", raw=chunks,
                              headers={"Transfer-Encoding": "chunked"})
    assert got == 413
    assert api.get("/api/info")[0] == 200


def test_disconnect_closes_a_users_connections_or_one_connection(served, tmp_path):
    """
    POST /api/users/{user}/disconnect closes every connection of that
    (verified) user with the code and reason given; others stay.  POST
    /api/connections/{id}/disconnect closes the one with that id, 4403 by
    default.
    """
    secret = tmp_path / "secret"
    secret.write_bytes(SECRET)
    service, api = served("--auth-secret-file", str(secret), "--auth-allow-query")

    def token(user: str) -> str:
        return jwt.encode({"sub": user, "exp": int(time.time()) + 600}, SECRET, "HS256")

    first, second = (chat(service, "kitchen", "m", f"&token={token('mallory')}") for _ in range(2))
    alice = chat(service, "kitchen", "alice", f"&token={token('alice')}")
    status, answer = api.post("/api/users/mallory/disconnect", {"code": 4403, "reason": "banned"})
    assert (status, answer) == (200, {"nodes": 1})
    assert closeCode(first) == closeCode(second) == (4403, "banned")
    status, _ = api.post(f"/api/connections/{alice.welcome['id']}/disconnect", {})
    assert status == 200
    assert closeCode(alice) == (4403, "disconnected by the server")
    service.waitForLog(r"disconnected 2 connections of mallory \(4403\): banned")


def test_the_api_can_have_a_listener_of_its_own(serviceFactory, keys):
    """
    With --api-listen the API answers there, and /api on the public port is
    an ordinary missing page.
    """
    port = freePort()
    service = serviceFactory("--api-key-file", keys, "--api-listen", f"tcp:{port}:interface=127.0.0.1")
    assert API(f"http://127.0.0.1:{port}").get("/api/info")[0] == 200
    status, _ = API(service.url(scheme="http")).get("/api/info")
    assert status == 404


def test_without_keys_there_is_no_api(service):
    """
    A service started without --api-key-file serves no /api.
    """
    status, body = API(service.url(scheme="http")).get("/api/info")
    assert status == 404 and not isinstance(body, dict)


def test_the_command_line_client_publishes_and_reports_errors(served, keys):
    """
    python -m wsservice.api publishes with the key file's key and prints
    the answer; a refused call prints the error and exits 1.
    """
    service, api = served()
    ws = chat(service, "kitchen", "alice")
    base = [sys.executable, "-m", "wsservice.api", "--url", api.base, "--key-file", keys]
    env = dict(os.environ, PYTHONPATH=str(REPO))
    done = subprocess.run(base + ["publish", "kitchen", "from the shell"], env=env,
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["seq"] == recvUntil(ws, "message")["seq"]
    done = subprocess.run(base + ["room", "r" * 65], env=env, capture_output=True, text=True,
                          timeout=30)
    assert done.returncode == 1 and "400" in done.stderr and "bad_room" in done.stderr


def test_the_access_log_follows_log_connections(served):
    """
    By default an API call writes no access-log line; with
    --log-connections it does.
    """
    quiet, api = served()
    api.publish("kitchen", "shh")
    api.get("/api/info")
    loud, other = served("--log-connections")
    other.get("/api/info")
    loud.waitForLog(r'"GET /api/info HTTP/1.1" 200')
    assert "/api/" not in quiet.log()
