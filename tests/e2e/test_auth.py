"""
The page signed in: the embedding application's token function, the token
as a subprotocol, the name it gives, a refresh before it expires, and a
reconnect with a fresh token after a 4100 close.
"""

from __future__ import annotations

import json
import time

import jwt
import pytest
from playwright.sync_api import expect

from tests.e2e.support import pageURL, say

SECRET = b"an-e2e-secret-of-at-least-32-bytes!!"


def token(sub: str, name: str, ttl: float) -> str:
    return jwt.encode({"sub": sub, "name": name, "exp": int(time.time() + ttl)}, SECRET, "HS256")


@pytest.fixture
def secured(service, tmp_path):
    secret = tmp_path / "secret"
    secret.write_bytes(SECRET)
    return service("--auth-secret-file", str(secret), "--auth-grace", "0",
                   "--presence-interval", "0.05")


def signedIn(new_page, server, tokens: list[str], room: str):
    """
    A page whose application hands out C{tokens} in turn (the last one
    again once they run out).
    """
    page = new_page()
    page.add_init_script(
        f"window.__tokens = {json.dumps(tokens)}; window.__asked = 0;"
        "window.wsserviceToken = async () => { window.__asked += 1;"
        " return window.__tokens.length > 1 ? window.__tokens.shift() : window.__tokens[0]; };")
    page.goto(pageURL(server, "?room=" + room))
    return page


def test_a_signed_in_page_uses_the_tokens_name_and_refreshes_before_expiry(secured, new_page):
    """
    The page asks for no name, connects with the token in a subprotocol
    (the server answers chat), shows the token's name, and refreshes before
    the token expires: when a page that could not refresh is closed with
    4100 at that moment, it is still on its first connection.
    """
    page = signedIn(new_page, secured, [token("u7", "Grace", 4), token("u7", "Grace", 600)], "auth")
    witness = signedIn(new_page, secured, [token("u9", "Ivy", 4)], "auth")
    expect(page.locator("#status")).to_have_attribute("data-state", "connected")
    expect(page.locator("#name-dialog")).to_be_hidden()
    expect(page.locator("#members .member.me .member-name")).to_have_text("Grace")
    assert page.evaluate("wsclient.chat.conn.ws.protocol") == "chat"
    first = page.locator("#me").get_attribute("data-expires")
    expect(page.locator("#me")).not_to_have_attribute("data-expires", first, timeout=10000)
    expect(witness.locator("#status")).to_contain_text("4100", timeout=10000)
    expect(page.locator("#status")).to_have_attribute("data-state", "connected")
    assert page.evaluate("wsclient.chat.opens") == 1
    say(page, "after the first token's expiry")
    expect(page.locator("#log li.msg .text")).to_have_text(["after the first token's expiry"])
    assert page.errors == []


def test_a_4100_close_reconnects_at_once_with_a_fresh_token(secured, new_page):
    """
    When a refresh is refused and the token expires, the server closes with
    4100; the page asks its application for a fresh token and reconnects
    without the backoff, as the close code table says.
    """
    expiring = token("u8", "Hal", 3)
    page = signedIn(new_page, secured, [expiring, "not-a-token", token("u8", "Hal", 600)], "auth2")
    expect(page.locator("#status")).to_have_attribute("data-state", "connected")
    expect(page.locator("#log li.sys.error")).to_contain_text("refresh refused", timeout=8000)
    expect(page.locator("#log li.sys.local").filter(has_text="Reconnected.")).to_have_count(
        1, timeout=8000)
    expect(page.locator("#status")).to_have_attribute("data-state", "connected")
    expect(page.locator("#members .member.me .member-name")).to_have_text("Hal")
    assert page.evaluate("wsclient.chat.opens") == 2 and page.evaluate("window.__asked") >= 3
