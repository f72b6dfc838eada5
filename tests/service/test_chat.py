"""
The chat protocol end to end: names, presence, history, ordering, freed
rooms, and the seed tutorials' clients playing their exact frames.
"""

from __future__ import annotations

import json
import re
import urllib.request

from tests.support.wsclient import open_, recvJSON, recvPresence, recvUntil


def roomsInMemory(service) -> float:
    with urllib.request.urlopen(service.url("/metrics", "http"), timeout=10) as response:
        return float(re.search(r"^wsservice_rooms (\S+)$", response.read().decode(), re.M).group(1))


def test_newcomer_gets_members_then_history_then_live(serviceFactory):
    """
    A newcomer receives the member list, then the last N messages marked as
    history, then live traffic; --history bounds N.
    """
    service = serviceFactory("--history", "3")
    with open_(service.url("/den?name=ann"), "chat") as ann:
        recvPresence(ann, "joined", "ann")
        for n in range(5):
            ann.send(json.dumps({"message": f"m{n}"}))
            recvUntil(ann, "message")
        with open_(service.url("/den?name=bob"), "chat") as bob:
            welcome = recvJSON(bob)
            assert welcome["type"] == "welcome" and welcome["you"] == "bob"
            assert [m["name"] for m in welcome["members"]] == ["ann", "bob"]
            history = recvJSON(bob)
            assert history["type"] == "history"
            assert [m["message"] for m in history["messages"]] == ["m2", "m3", "m4"]
            presence = recvJSON(bob)
            assert presence["type"] == "presence" and presence["joined"][0]["name"] == "bob"
            ann.send(json.dumps({"message": "live"}))
            assert recvUntil(bob, "message")["message"] == "live"


def test_history_zero_disables_history(serviceFactory):
    """
    With --history 0 a newcomer gets no history batch.
    """
    service = serviceFactory("--history", "0")
    with open_(service.url("/h"), "chat") as a:
        recvPresence(a, "joined")
        a.send("said before")
        recvUntil(a, "message")
        with open_(service.url("/h"), "chat") as b:
            assert recvJSON(b)["type"] == "welcome"
            assert recvJSON(b)["type"] == "presence"


def test_every_event_has_a_strictly_increasing_seq_and_server_time(service):
    """
    Messages and presence events carry a per-room, strictly increasing seq
    and an ISO 8601 UTC time, and all members see one order.
    """
    with open_(service.url("/order"), "chat") as a, open_(service.url("/order"), "chat") as b:
        start = recvUntil(a, "welcome")["seq"]
        for n in range(20):
            (a if n % 2 else b).send(json.dumps({"message": str(n)}))
        seen = {}
        for ws in (a, b):
            events = []
            while len([e for e in events if e["type"] == "message"]) < 20:
                event = recvJSON(ws)
                if "seq" in event and event["type"] != "welcome":
                    events.append(event)
            seqs = [e["seq"] for e in events]
            assert seqs == sorted(set(seqs)) and seqs[0] > start
            assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", e["time"]) for e in events)
            seen[ws] = [(e["seq"], e["message"]) for e in events if e["type"] == "message"]
        assert seen[a] == seen[b]


def test_rename_and_member_count(service):
    """
    A name sent with a message renames the sender, announced to the room
    with the member count; the renamed person's messages carry the new name.
    """
    with open_(service.url("/names"), "chat") as a, open_(service.url("/names"), "chat") as b:
        recvUntil(a, "welcome")
        recvUntil(b, "welcome")
        recvPresence(b, "joined")
        a.send(json.dumps({"name": "  Zoë  ", "message": "hi"}))
        message = recvUntil(b, "message")
        assert (message["name"], message["message"]) == ("Zoë", "hi")
        rename, entry = recvPresence(b, "renamed", "Zoë")
        assert rename["name"] == "" and entry["previous"] == "anonymous" and rename["count"] == 2
        assert rename["message"] == "anonymous is now Zoë"


def test_rooms_are_freed_when_empty(serviceFactory):
    """
    A room with no members, no history and no recovery log is freed: memory
    does not grow with the number of rooms ever used.  (With a log, the
    1000 most recently used are kept for members who come back.)
    """
    # Connection lines on: their close codes say when all 30 are gone.
    service = serviceFactory("--recovery", "0", "--log-connections")
    for n in range(30):
        with open_(service.url(f"/transient{n}"), "chat") as ws:
            recvPresence(ws, "joined")
    assert service.waitFor(lambda: sum(" code=1000 " in line for line in service.lines) == 30)
    with open_(service.url("/probe"), "chat") as ws:
        recvPresence(ws, "joined")
        assert roomsInMemory(service) == 1


def test_seed_000_json_chat_page_works_unchanged(service):
    """
    The 000 tutorial page's frames (JSON {name, message} in, name: message
    shown) work with its URL and subprotocol pointed at us.
    """
    with open_(service.url("/"), "chat") as page, open_(service.url("/"), "chat") as other:
        greeting = json.loads(page.recv(timeout=10))
        assert (greeting["name"], greeting["message"]) == ("", "Connected!")
        page.send(json.dumps({"name": "alice", "message": "hello from the tutorial"}))
        for ws in (page, other):
            while True:
                data = json.loads(ws.recv(timeout=10))
                if data["message"] == "hello from the tutorial":
                    break
            assert data["name"] == "alice"


def test_seed_001_plain_text_page_works_unchanged(service):
    """
    The 001 tutorial page (no subprotocol, sends "nick: text", shows every
    frame as text) chats with a JSON client in the default room.
    """
    with open_(service.url("/")) as plain, open_(service.url("/"), "chat") as modern:
        assert plain.subprotocol is None
        recvUntil(modern, "welcome")
        plain.send("nick: good morn")
        event = recvUntil(modern, "message")
        assert event["message"] == "nick: good morn"
        modern.send(json.dumps({"name": "ann", "message": "hi nick"}))
        while True:
            text = plain.recv(timeout=10)
            if "hi nick" in text:
                break
        assert json.loads(text)["name"] == "ann"
