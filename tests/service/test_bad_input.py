"""
Bad input costs only its sender: what an attacker or a careless client
sends gets a precise answer, never a 4000 (which means a handler bug), and
everyone else carries on.  Each test is one row of the issue that found it.
"""

from __future__ import annotations

import json
import socket
import time

from tests.support.rawws import RawClient, frame
from tests.support.wsclient import closeCode, open_, recvJSON, recvPresence, recvUntil

# Connection lines on: the close codes of the log are part of what is checked.
SERVICE_ARGS = ("--presence-interval", "0.05", "--log-connections")


def roomPair(service, room: str):
    a = open_(service.url(f"/{room}?name=a"), "chat")
    b = open_(service.url(f"/{room}?name=b"), "chat")
    recvPresence(b, "joined", "a")
    recvPresence(a, "joined", "b")
    return a, b


def seqs(ws, until: str) -> tuple[list[int], dict]:
    """
    The seqs of every room event C{ws} receives up to the message C{until}.
    """
    seen = []
    while True:
        event = recvJSON(ws)
        if "seq" in event and event["type"] != "welcome":
            seen.append(event["seq"])
        if event["type"] == "message" and event["message"] == until:
            return seen, event


def test_a_lone_surrogate_escape_is_relayed_replaced_and_costs_no_seq(service):
    """
    A chat message whose JSON holds a lone surrogate escape reaches the room
    with U+FFFD in its place; the sender stays connected and the room's
    seqs have no gap.
    """
    a, b = roomPair(service, "surrogate")
    with a, b:
        a.send('{"message": "half \\ud800 a pair", "name": "x\\udfffy"}')
        a.send(json.dumps({"message": "after"}))
        seen, after = seqs(b, "after")
        assert seen == list(range(seen[0], seen[0] + len(seen)))
        a.send(json.dumps({"message": "still here"}))
        assert recvUntil(a, "message")["message"] == "half \ufffd a pair"
    assert "code=4000" not in service.log()


def test_json_nested_deeper_than_the_parser_goes_is_text(service):
    """
    A frame nested 10,000 deep, whole or as the message, is not JSON to
    chat: it is relayed as text.  The clock answers it with an error.  No
    connection is closed.
    """
    deep = "[" * 10000 + "]" * 10000
    a, b = roomPair(service, "deep")
    with a, b:
        a.send(deep)
        assert recvUntil(b, "message")["message"] == deep
        wrapped = '{"message": ' + deep + "}"
        a.send(wrapped)
        assert recvUntil(b, "message")["message"] == wrapped
    with open_(service.url("/"), "clock") as clock:
        assert recvJSON(clock)["type"] == "tick"
        clock.send(deep)
        assert recvUntil(clock, "error")["message"].startswith("not JSON")
    assert "code=4000" not in service.log()


def test_nothing_is_handled_after_the_frame_that_closed_a_connection(service):
    """
    A frame that arrives behind the one that closed its connection (invalid
    UTF-8 here: 1007) is not relayed to the room.
    """
    with open_(service.url("/closed?name=b"), "chat") as b:
        with RawClient(service.port, "/closed?name=raw", protocol="chat") as raw:
            recvPresence(b, "joined", "raw")
            raw.send(frame(0x1, b"\xc3\x28 bad") + frame(0x1, json.dumps({"message": "ghost"}).encode()))
            assert raw.closeCode()[0] == 1007
        with open_(service.url("/closed?name=c"), "chat") as c:
            c.send(json.dumps({"message": "marker"}))
            while True:
                event = recvUntil(b, "message")
                assert event["message"] != "ghost"
                if event["message"] == "marker":
                    break


def probe(service, room: str, count: int) -> list[float]:
    """
    Latencies (s) of C{count} messages from one member of C{room} to another,
    one at a time, read while the room may be busy with other traffic.
    """
    got: list[float] = []
    with open_(service.url(f"/{room}?name=probe-in"), "chat") as receiver, \
            open_(service.url(f"/{room}?name=probe-out"), "chat") as sender:
        recvPresence(receiver, "joined", "probe-out")
        for n in range(count):
            sent = time.monotonic()
            sender.send(json.dumps({"message": f"probe {n}"}))
            while True:
                event = recvJSON(receiver)
                if event.get("type") == "message" and event["message"] == f"probe {n}":
                    got.append(time.monotonic() - sent)
                    break
    return got


def p99(values: list[float]) -> float:
    return sorted(values)[int(len(values) * 0.99)]


def test_a_flood_is_slowed_then_closed_and_costs_the_others_nothing(serviceFactory):
    """
    A chat client that sends 5,000 messages at once is read at its rate
    (100/s), closed with 4002 once it stays over for --rate-limit-grace,
    logged once (and counted at its close); the others' p99 stays within a
    few milliseconds of the quiet room's.
    """
    service = serviceFactory("--rate-limit-grace", "2", "--presence-interval", "0.05")
    quiet = probe(service, "flood", 60)
    flood = b"".join(frame(0x1, json.dumps({"message": f"spam {n}"}).encode()) for n in range(5000))
    with RawClient(service.port, "/flood?name=flooder", protocol="chat") as flooder:
        flooder.sock.sendall(flood)
        busy = probe(service, "flood", 60)
        assert flooder.closeCode() == (4002, "rate limit exceeded")
    assert p99(busy) <= p99(quiet) + 0.025, (p99(quiet), p99(busy))
    slowed = [line for line in service.lines if "slowing" in line]
    assert len(slowed) == 1 and "over 100 messages per second" in slowed[0]
    service.waitForLog(r"closed \S+ \(\S+\) with code \d+ after warnings: rate x1")


def rawHead(port: int, head: bytes, chunk: int = 4096) -> bytes:
    """
    Send C{head} in chunks for as long as the server reads it, then return
    what it answered.
    """
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.settimeout(0.5)
        try:
            for start in range(0, len(head), chunk):
                sock.sendall(head[start:start + chunk])
        except (socket.timeout, BrokenPipeError, ConnectionResetError):
            pass  # the server stopped reading
        sock.settimeout(10)
        answer = b""
        try:
            while data := sock.recv(65536):
                answer += data
        except ConnectionResetError:
            pass
        return answer


def rssKiB(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return int(next(line for line in f if line.startswith("VmRSS:")).split()[1])


UPGRADE = (b"GET /r HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n")


def test_a_request_head_that_never_ends_gets_431_at_16_kib(service):
    """
    An upgrade whose head never ends is answered with 431 once it passes
    16 KiB, and logged; so is one with 64 KiB of headers, and a plain HTTP
    request alike.
    """
    before = rssKiB(service.pid)
    endless = UPGRADE + b"X-Pad: " + b"a" * (8 * 1024 * 1024)
    answer = rawHead(service.port, endless)
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
    assert b"request head larger than 16384 bytes" in answer
    assert rssKiB(service.pid) - before < 4096
    lines = b"".join(b"X-H%d: %s\r\n" % (n, b"v" * 100) for n in range(640))
    answer = rawHead(service.port, UPGRADE + b"Sec-WebSocket-Version: 13\r\n" + lines + b"\r\n")
    assert answer.startswith(b"HTTP/1.1 431 ")
    answer = rawHead(service.port, b"GET / HTTP/1.1\r\nHost: x\r\n" + lines + b"\r\n")
    assert answer.startswith(b"HTTP/1.1 431 ")
    service.waitForLog(r"refused \S+: 431 request head larger than 16384 bytes")


def test_websocket_versions_other_than_13_get_426(service):
    """
    Sec-WebSocket-Version 8 (an old draft) is refused with 426 Upgrade
    Required naming version 13 (RFC 6455 section 4.4).
    """
    answer = rawHead(service.port, UPGRADE + b"Sec-WebSocket-Version: 8\r\n\r\n")
    status, _, rest = answer.partition(b"\r\n")
    assert status.startswith(b"HTTP/1.1 426 "), answer
    assert b"\r\nSec-WebSocket-Version: 13\r\n" in b"\r\n" + rest
