"""
End-to-end tests of the real C{twistd wsservice} process over loopback
sockets, with a real WebSocket client.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from tests.support.wsclient import closeCode, open_, recvJSON, recvPresence, recvUntil, refusal


SERVICE_ARGS = ("--clock-interval", "0.2")


def get(url: str) -> tuple[int, bytes, dict[str, str]]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read(), dict(e.headers)


def test_static_client_is_served_on_the_websocket_port(service):
    """
    A plain GET of / on the WebSocket port returns the browser client.
    """
    status, body, headers = get(service.url("/", "http"))
    assert status == 200
    assert b"<html" in body.lower()
    assert headers["Content-Type"].startswith("text/html")


def test_client_modules_are_served_as_javascript(service):
    """
    The client's ES modules are served with a JavaScript MIME type: a
    browser refuses to run a module script served as anything else.
    """
    status, body, headers = get(service.url("/js/main.js", "http"))
    assert status == 200
    assert b"import" in body
    assert headers["Content-Type"].split(";")[0].strip() in ("text/javascript", "application/javascript")


def test_unknown_file_is_404(service):
    """
    A plain GET for a file that does not exist is a 404, not a handshake.
    """
    assert get(service.url("/no-such-file.js", "http"))[0] == 404


def test_first_supported_subprotocol_in_client_order_wins(service):
    """
    The server selects the first offered subprotocol it has a handler for,
    in the client's order, and echoes it.
    """
    with open_(service.url(), "nope", "echo", "chat") as ws:
        assert ws.subprotocol == "echo"
    with open_(service.url(), "clock", "echo") as ws:
        assert ws.subprotocol == "clock"


def test_unknown_subprotocols_are_refused_with_the_supported_list(service):
    """
    Offering only unknown subprotocols gets HTTP 400 whose reason names
    every supported one, and the refusal is logged once with the peer.
    """
    status, body = refusal(service.url(), "mqtt", "stomp")
    assert status == 400
    assert "mqtt, stomp" in body
    assert "supported: chat, clock, echo" in body
    line = service.waitForLog(r"refused tcp4:127\.0\.0\.1:\d+: 400 unsupported subprotocol mqtt")
    assert sum(1 for l in service.lines if "mqtt" in l) == 1, line


def test_no_subprotocol_gets_the_default_handler(service):
    """
    A client that offers no subprotocol is served by the default handler
    (chat) and gets no Sec-WebSocket-Protocol back.
    """
    with open_(service.url()) as ws:
        assert ws.subprotocol is None
        greeting = recvJSON(ws)
        assert greeting["name"] == "" and greeting["message"] == "Connected!"


def test_websocket_upgrade_on_any_path(service):
    """
    A WebSocket upgrade is accepted on any path, not only on /.
    """
    with open_(service.url("/some/deep/path.html?x=1"), "echo") as ws:
        ws.send("deep")
        assert ws.recv(timeout=10) == "deep"


def test_echo_returns_text_as_text_and_binary_as_binary(service):
    """
    echo sends each message back unchanged and of the same kind, and sends
    nothing else.
    """
    with open_(service.url(), "echo") as ws:
        ws.send("héllo ✓")
        assert ws.recv(timeout=10) == "héllo ✓"
        ws.send(bytes(range(256)))
        assert ws.recv(timeout=10) == bytes(range(256))
        ws.send("")
        assert ws.recv(timeout=10) == ""
        with pytest.raises(TimeoutError):
            ws.recv(timeout=0.3)


def test_chat_relays_to_everyone_in_the_room_and_no_one_else(service):
    """
    A chat message reaches every client in its room, sender included, and
    no client in another room.
    """
    with open_(service.url("/kitchen"), "chat") as alice, open_(
        service.url("/kitchen"), "chat"
    ) as bob, open_(service.url("/garden"), "chat") as carol:
        for ws in (alice, bob, carol):
            assert recvJSON(ws)["message"] == "Connected!"
        recvPresence(alice, "joined")  # both, in one presence event
        alice.send(json.dumps({"name": "alice", "message": "dinner is ready"}))
        for ws in (alice, bob):
            event = recvUntil(ws, "message")
            assert (event["name"], event["message"], event["room"]) == (
                "alice", "dinner is ready", "kitchen")
        carol.send(json.dumps({"name": "carol", "message": "roses"}))
        event = recvUntil(carol, "message")
        assert event["message"] == "roses" and event["room"] == "garden"
        alice.send(json.dumps({"message": "second"}))
        assert recvUntil(bob, "message")["message"] == "second"


def test_chat_join_and_leave_events_are_system_messages(service):
    """
    Joins and leaves reach the room as presence events with an empty name,
    a message for people and the member count.
    """
    with open_(service.url("/hall?name=ann"), "chat") as ann:
        recvPresence(ann, "joined", "ann")
        with open_(service.url("/hall?name=ben"), "chat"):
            joined, _ = recvPresence(ann, "joined", "ben")
            assert joined["name"] == "" and joined["message"] == "ben joined"
            assert joined["count"] == 2
        left, _ = recvPresence(ann, "left", "ben")
        assert left["name"] == "" and left["message"] == "ben left" and left["count"] == 1


def test_chat_plain_text_and_binary(service):
    """
    Plain text becomes the message of a JSON chat object; binary frames are
    relayed as binary.
    """
    with open_(service.url("/plain"), "chat") as a, open_(service.url("/plain"), "chat") as b:
        recvUntil(a, "welcome")
        recvUntil(b, "welcome")
        a.send("nick: just text")
        assert recvUntil(b, "message")["message"] == "nick: just text"
        a.send(b"\x00\xffbinary")
        while True:
            frame = b.recv(timeout=10)
            if isinstance(frame, bytes):
                break
        assert frame == b"\x00\xffbinary"


def test_clock_ticks_at_once_and_at_the_interval(service):
    """
    clock sends the first tick at once and then one per interval, with
    ISO 8601 UTC time.
    """
    with open_(service.url(), "clock") as ws:
        first = recvJSON(ws, timeout=0.15)
        assert first["type"] == "tick" and first["time"].endswith("Z")
        assert first["interval"] == 0.2
        second = recvJSON(ws, timeout=2)
        assert second["time"] > first["time"]


def test_clock_interval_can_be_changed_and_nonsense_is_an_error(service):
    """
    A client changes its own interval with {"interval": s}; nonsense is
    answered with an error object and the connection stays open.
    """
    with open_(service.url(), "clock") as ws:
        recvJSON(ws)
        ws.send(json.dumps({"interval": 0.1}))
        ack = recvUntil(ws, "tick")
        while ack["interval"] != 0.1:
            ack = recvUntil(ws, "tick")
        for nonsense in ("soon", json.dumps({"interval": -1}), json.dumps({"interval": "1"}),
                         json.dumps({"interval": 1e9}), json.dumps([1])):
            ws.send(nonsense)
            assert "interval" in recvUntil(ws, "error")["message"]
        ws.send(b"\x01")
        assert recvUntil(ws, "error")["type"] == "error"
        assert recvUntil(ws, "tick")["interval"] == 0.1


def test_default_subprotocol_option(serviceFactory):
    """
    --default-subprotocol picks the handler for clients that offer nothing,
    and an empty value refuses them with the supported list.
    """
    echo = serviceFactory("--default-subprotocol", "echo")
    with open_(echo.url()) as ws:
        ws.send("x")
        assert ws.recv(timeout=10) == "x"
    strict = serviceFactory("--default-subprotocol", "")
    status, body = refusal(strict.url())
    assert status == 400 and "supported: chat, clock, echo" in body


def test_sigterm_closes_clients_with_going_away_and_exits_zero(serviceFactory):
    """
    SIGTERM sends every client a 1001 close frame and the process exits 0.
    """
    service = serviceFactory()
    with open_(service.url(), "echo") as ws:
        ws.send("ping")
        ws.recv(timeout=10)
        assert service.stop() == 0
        code, reason = closeCode(ws)
    assert code == 1001 and reason == "server shutting down"


def test_upgrade_after_a_plain_request_on_the_same_connection(service):
    """
    A kept-alive connection that first fetched a page can then upgrade to a
    WebSocket.
    """
    from tests.support.rawws import frame
    import base64
    import os
    import socket

    with socket.create_connection(("127.0.0.1", service.port), timeout=10) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        response = b""
        while b"\r\n\r\n" not in response or not response.endswith(b"\n"):
            response += sock.recv(4096)
        assert response.startswith(b"HTTP/1.1 200")
        key = base64.b64encode(os.urandom(16))
        sock.sendall(b"GET /again HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     b"Sec-WebSocket-Key: " + key + b"\r\nSec-WebSocket-Version: 13\r\n"
                     b"Sec-WebSocket-Protocol: echo\r\n\r\n")
        head = b""
        while b"\r\n\r\n" not in head:
            head += sock.recv(4096)
        assert head.startswith(b"HTTP/1.1 101")
        sock.sendall(frame(0x1, b"same socket"))
        rest = head.split(b"\r\n\r\n", 1)[1]
        while len(rest) < 13:
            rest += sock.recv(4096)
        assert rest[2:13] == b"same socket"
