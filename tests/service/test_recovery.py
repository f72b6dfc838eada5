"""
Gap-free recovery end to end: a real chat client drops its connection,
the room carries on, and the client comes back with ?since=&epoch= to get
exactly what it missed, or is told plainly that it cannot.
"""

from __future__ import annotations

import json
import signal

from tests.support.api import API, keyFile
from tests.support.wsclient import open_, recvJSON, recvUntil


def chat(service, room: str, name: str, since: dict | None = None):
    query = f"?name={name}"
    if since is not None:
        query += f"&since={since['seq']}&epoch={since['epoch']}"
    ws = open_(service.url(f"/{room}{query}"), "chat")
    return ws, recvJSON(ws)


def say(ws, text: str) -> dict:
    """
    Send C{text} and return it as the room delivered it back.
    """
    ws.send(json.dumps({"message": text}))
    while True:
        event = recvUntil(ws, "message")
        if event["message"] == text:
            return event


def test_a_client_that_comes_back_gets_exactly_what_it_missed(serviceFactory):
    """
    Alice leaves after seq N; Bob says three things; Alice reconnects with
    since=N: she gets "resumed" with recovered true, then the room's events
    after N in order (Bob's messages among them, her own leave included),
    and then live traffic, with no seq skipped.
    """
    service = serviceFactory("--presence-interval", "0.05")
    alice, welcome = chat(service, "kitchen", "alice")
    bob, _ = chat(service, "kitchen", "bob")
    say(alice, "before")
    say(bob, "sync")
    seen = recvUntil(alice, "message")
    assert seen["message"] == "sync"
    alice.close()
    sent = [say(bob, f"missed {i}") for i in range(3)]
    back, resumed = chat(service, "kitchen", "alice", since=seen)
    assert resumed["type"] == "resumed" and resumed["recovered"] is True, resumed
    assert resumed["epoch"] == welcome["epoch"] and resumed["seq"] >= sent[-1]["seq"]
    missed = [recvJSON(back) for _ in range(resumed["missed"])]
    assert [e["seq"] for e in missed] == list(range(seen["seq"] + 1, resumed["seq"] + 1))
    assert [e["message"] for e in missed if e["type"] == "message"] == [
        "missed 0", "missed 1", "missed 2"]
    live = say(bob, "live")
    got = recvUntil(back, "message")
    assert (got["message"], got["seq"]) == ("live", live["seq"])


def test_nothing_missed_is_a_recovery_with_nothing_in_it(serviceFactory):
    """
    Coming back at the room's last seq is recovered true with missed 0
    (presence is held for 30 s here, so no join or leave is published in
    between).
    """
    service = serviceFactory("--presence-interval", "30")
    alice, _ = chat(service, "quiet", "alice")
    last = say(alice, "only")
    alice.close()
    back, resumed = chat(service, "quiet", "alice", since=last)
    assert (resumed["recovered"], resumed["missed"], resumed["seq"]) == (True, 0, last["seq"])


def test_a_gap_larger_than_the_log_is_reported_and_a_fresh_welcome_follows(serviceFactory):
    """
    With --recovery 3, missing five events cannot be recovered: the client
    is told "resumed" with recovered false, then gets a full welcome and the
    history, as a newcomer would.
    """
    service = serviceFactory("--recovery", "3", "--history", "10")
    alice, _ = chat(service, "busy", "alice")
    seen = say(alice, "start")
    alice.close()
    bob, _ = chat(service, "busy", "bob")
    for i in range(5):
        say(bob, f"m{i}")
    back, resumed = chat(service, "busy", "alice", since=seen)
    assert (resumed["type"], resumed["recovered"]) == ("resumed", False)
    assert "could not be recovered" in resumed["message"]
    welcome = recvJSON(back)
    assert welcome["type"] == "welcome"
    history = recvUntil(back, "history")
    assert [m["message"] for m in history["messages"]][-5:] == [f"m{i}" for i in range(5)]


def test_a_wrong_or_stale_epoch_is_never_taken_for_the_current_one(serviceFactory):
    """
    The same seq in another epoch (the room's history was lost: here, the
    service restarted) is not recovered; a made-up epoch neither.
    """
    service = serviceFactory()
    alice, welcome = chat(service, "restart", "alice")
    seen = say(alice, "before the restart")
    alice.close()
    back, resumed = chat(service, "restart", "alice", since={**seen, "epoch": "not-the-epoch"})
    assert resumed["recovered"] is False
    back.close()
    service.stop(signal.SIGTERM)
    service.start()
    bob, _ = chat(service, "restart", "bob")
    say(bob, "after the restart")
    back, resumed = chat(service, "restart", "alice", since=seen)
    assert resumed["recovered"] is False
    assert recvJSON(back)["epoch"] != welcome["epoch"]


def test_api_publishes_are_recovered_like_any_event(serviceFactory, tmp_path):
    """
    What the backend published while a client was away is in what it
    recovers, with the seqs the API answered.
    """
    service = serviceFactory("--api-key-file", keyFile(tmp_path))
    api = API(service.url("", scheme="http"))
    alice, _ = chat(service, "news", "alice")
    seen = say(alice, "hello")
    alice.close()
    published = [api.publish("news", f"headline {i}") for i in range(3)]
    back, resumed = chat(service, "news", "alice", since=seen)
    assert resumed["recovered"] is True
    missed = [recvJSON(back) for _ in range(resumed["missed"])]
    assert [(e["seq"], e["message"]) for e in missed if e.get("source") == "api"] == [
        (p["seq"], f"headline {i}") for i, p in enumerate(published)]
