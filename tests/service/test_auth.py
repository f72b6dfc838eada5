"""
Verified identity end to end: the real service with --auth, real tokens
signed here with PyJWT, a real connect-hook backend on loopback, and real
WebSocket clients carrying the token each way a client can.
"""

from __future__ import annotations

import base64
import http.server
import json
import threading
import time

import jwt
import pytest

from tests.support.wsclient import closeCode, open_, recvJSON, recvPresence, recvUntil, refusal

SECRET = b"a-test-secret-of-at-least-32-bytes!"


def token(sub: str = "u1", ttl: float = 86400, **claims) -> str:
    return jwt.encode({"sub": sub, "exp": int(time.time() + ttl), **claims}, SECRET, "HS256")


def bearer(value: str) -> str:
    return "bearer." + base64.urlsafe_b64encode(value.encode()).decode().rstrip("=")


@pytest.fixture
def secured(serviceFactory, tmp_path):
    """
    A factory of services checking HS256 tokens signed with L{SECRET}.
    """
    secret = tmp_path / "secret"
    secret.write_bytes(SECRET)

    def start(*args: str):
        # Connection lines on: the tests check that no token reaches the log.
        return serviceFactory("--auth-secret-file", str(secret), "--presence-interval", "0.05",
                              "--log-connections", *args)

    return start


def test_a_token_in_a_subprotocol_names_the_user_and_only_chat_is_echoed(secured):
    """
    A browser-style client offers chat plus bearer.<token>: it is admitted
    under the token's name (not ?name=), the answer names only chat, and the
    token shows in no log line.
    """
    service = secured()
    value = token("u1", name="Alice", rooms=["kitchen"])
    with open_(service.url("/kitchen?name=Mallory"), "chat", bearer(value)) as ws:
        assert ws.subprotocol == "chat"
        welcome = recvJSON(ws)
        assert (welcome["you"], welcome["user"]) == ("Alice", "u1") and welcome["expires"]
        ws.send(json.dumps({"name": "Bob", "message": "hi"}))
        message = recvUntil(ws, "message")
        assert (message["name"], message["user"]) == ("Alice", "u1")
        ws.send(json.dumps({"type": "rename", "name": "Bob"}))
        assert "cannot be changed" in recvUntil(ws, "error")["message"]
    assert value not in service.log()


@pytest.mark.parametrize("value, status, words", [
    (None, 401, "a token is required"),
    (token(ttl=-10), 401, "expired"),
    (jwt.encode({"sub": "u1", "exp": int(time.time()) + 86400}, b"w" * 40, "HS256"), 401, "not valid"),
    (jwt.encode({"sub": "u1", "exp": int(time.time()) + 86400}, None, "none"), 401, "not valid"),
    (token(rooms=["garden"]), 403, "may not open room kitchen"),
], ids=["missing", "expired", "wrong-key", "alg-none", "other-room"])
def test_bad_tokens_are_refused_before_the_upgrade(secured, value, status, words):
    """
    No token, an expired one, one signed with another key, alg none, and
    one for another room get 401 or 403 with the reason, before the upgrade.
    """
    service = secured()
    offers = ["chat", bearer(value)] if value else ["chat"]
    got, reason = refusal(service.url("/kitchen"), *offers)
    assert got == status and words in reason


def test_the_audience_and_issuer_must_match(secured):
    """
    With --auth-audience and --auth-issuer, a token for another audience or
    from another issuer is refused; the right ones are admitted.
    """
    service = secured("--auth-audience", "chat", "--auth-issuer", "app")
    assert refusal(service.url("/"), "chat", bearer(token(aud="billing", iss="app")))[0] == 401
    assert refusal(service.url("/"), "chat", bearer(token(aud="chat", iss="evil")))[0] == 401
    with open_(service.url("/"), "chat", bearer(token(aud="chat", iss="app"))) as ws:
        assert recvJSON(ws)["user"] == "u1"


def test_other_carriers_header_cookie_and_query_only_when_allowed(secured):
    """
    Authorization: Bearer and the --auth-cookie carry a token; ?token= does
    only with --auth-allow-query, and handlers never see it.
    """
    service = secured("--auth-cookie", "session")
    with open_(service.url("/"), "chat",
               additional_headers={"Authorization": f"Bearer {token('h')}"}) as ws:
        assert recvJSON(ws)["user"] == "h"
    with open_(service.url("/"), "chat", additional_headers={"Cookie": f"x=1; session={token('c')}"}) as ws:
        assert recvJSON(ws)["user"] == "c"
    assert refusal(service.url(f"/?token={token('q')}"), "chat")[0] == 401
    open = secured("--auth-allow-query")
    with open_(open.url(f"/?token={token('q')}"), "chat") as ws:
        assert recvJSON(ws)["user"] == "q"


def test_an_identity_that_expires_while_connected_is_closed_with_4100(secured):
    """
    A connection whose token expires is closed with 4100 (reconnect with a
    new token) once --auth-grace is over, unless it was refreshed: a refresh
    is acknowledged with the new expiry and the connection stays.
    """
    service = secured("--auth-grace", "0")
    with open_(service.url("/"), "chat", bearer(token("stays", ttl=3))) as stays, \
            open_(service.url("/"), "chat", bearer(token("goes", ttl=3))) as goes:
        recvUntil(stays, "welcome")
        stays.send(json.dumps({"type": "refresh", "token": token("stays", ttl=600)}))
        refreshed = recvUntil(stays, "refreshed")
        assert refreshed["expires"] > recvUntil(goes, "welcome")["expires"]
        stays.send(json.dumps({"type": "refresh", "token": token("someone-else", ttl=600)}))
        assert "another user" in recvUntil(stays, "error")["message"]
        assert closeCode(goes) == (4100, "token expired")
        stays.send(json.dumps({"message": "still here"}))
        assert recvUntil(stays, "message")["message"] == "still here"


def test_two_tabs_of_one_user_are_one_member(secured):
    """
    Two connections with one user's token count as one user: the room
    announces the user once, lists it once, and announces it gone only when
    its last connection leaves.
    """
    service = secured()
    with open_(service.url("/tabs"), "chat", bearer(token("carol", name="Carol"))) as watcher:
        recvPresence(watcher, "joined", "Carol")
        first = open_(service.url("/tabs"), "chat", bearer(token("dan", name="Dan")))
        second = open_(service.url("/tabs"), "chat", bearer(token("dan", name="Dan")))
        welcome = recvUntil(second, "welcome")
        assert (welcome["count"], welcome["users"]) == (3, 2)
        assert sorted(m["id"] for m in welcome["members"]) == ["carol", "dan"]
        joined, _ = recvPresence(watcher, "joined", "Dan")
        assert joined["joinedCount"] == 1 and joined["users"] == 2
        first.close()
        second.send(json.dumps({"message": "one tab left"}))
        between = []
        while (event := recvJSON(watcher))["type"] != "message":
            between.append(event)
        assert not [e for e in between if e["type"] == "presence" and e["leftCount"]]
        second.close()
        left, entry = recvPresence(watcher, "left", "Dan")
        assert entry["id"] == "dan" and left["users"] == 1


class Backend(http.server.BaseHTTPRequestHandler):
    """
    The application's auth endpoint: admits the session cookie alice, bans
    mallory, and takes its time for slow.
    """

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        cookie = body["headers"].get("cookie", "")
        if "session=slow" in cookie:
            self.server.slowDone.wait(10)  # the backend's own delay
        if "session=alice" in cookie:
            self.answer(200, {"user": "alice-id", "name": "Alice", "rooms": ["*"],
                              "info": {"team": "red"}})
        elif "session=mallory" in cookie:
            self.answer(403, {"reason": "mallory is banned"})
        else:
            self.answer(401, {"reason": "sign in first"})

    def answer(self, code: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def backend():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Backend)
    server.slowDone = threading.Event()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/ws-auth"
    server.slowDone.set()
    server.shutdown()


def test_the_connect_hook_admits_refuses_times_out_and_fails_closed(serviceFactory, backend):
    """
    With --auth-url the backend decides from the forwarded cookie: its
    identity is used, its 401/403 reasons reach the client, a backend slower
    than --auth-timeout or down gets 503: nobody is admitted unchecked.
    """
    service = serviceFactory("--auth-url", backend, "--auth-timeout", "1")
    with open_(service.url("/"), "chat", additional_headers={"Cookie": "session=alice"}) as ws:
        welcome = recvJSON(ws)
        assert (welcome["user"], welcome["you"]) == ("alice-id", "Alice")
        assert welcome["members"][0]["info"] == {"team": "red"}
    assert refusal(service.url("/"), "chat", additional_headers={"Cookie": "session=mallory"}) == (
        403, "mallory is banned\n")
    assert refusal(service.url("/"), "chat")[0] == 401
    status, reason = refusal(service.url("/"), "chat", additional_headers={"Cookie": "session=slow"})
    assert status == 503 and "unavailable" in reason
    down = serviceFactory("--auth-url", "http://127.0.0.1:9/ws-auth", "--auth-timeout", "1")
    assert refusal(down.url("/"), "chat", additional_headers={"Cookie": "session=alice"})[0] == 503
    down.waitForLog(r"authentication backend http://127\.0\.0\.1:9/ws-auth failed")
