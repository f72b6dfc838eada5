"""
What the page shows and does when the connection is lost, refused or never
made.
"""

from __future__ import annotations

import re
import signal
import socket
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.e2e.support import join, pageURL, say, seriousErrors
from tests.support.processes import REPO, ServiceProcess

STATIC = REPO / "static"


def test_page_reconnects_by_itself_after_the_server_is_killed_and_keeps_the_draft(service, new_page):
    """
    After a SIGKILL the page shows disconnected, reconnects by itself when the server is back on the same port, keeps the text being typed, says what was missed could not be recovered, and chat works again.
    """
    chat = service()
    alice = join(new_page(pageURL(chat)), "alice")
    bob = join(new_page(pageURL(chat)), "bob")
    say(alice, "before the crash")
    expect(bob.locator("#log li.msg")).to_have_count(1)

    port = chat.port
    chat.stop(signal.SIGKILL)
    for page in (alice, bob):
        expect(page.locator("#status")).to_have_attribute("data-state", "disconnected")
        expect(page.locator("#status")).to_contain_text("1006")
        expect(page.locator("#notice")).to_have_attribute("data-kind", "dropped")
        expect(page.locator("#send")).to_be_disabled()
    alice.fill("#msg", "typed while the server was down")
    alice.press("#msg", "Enter")            # cannot be sent now: must not be lost
    expect(alice.locator("#msg")).to_have_value("typed while the server was down")

    service(port=port)
    for page in (alice, bob):
        expect(page.locator("#status")).to_have_attribute("data-state", "connected", timeout=15000)
        expect(page.locator("#notice")).to_be_hidden()
    expect(alice.locator("#msg")).to_have_value("typed while the server was down")
    expect(bob.locator("#members .member-name")).to_have_text(["alice", "bob"])
    alice.press("#msg", "Enter")
    for page in (alice, bob):
        expect(page.locator("#log li.msg .text")).to_have_text(
            ["before the crash", "typed while the server was down"])
    expect(alice.locator("#log li.msg.mine")).to_have_count(2)
    expect(alice.locator("#msg")).to_have_value("")
    # The restarted server has lost the room: the page says so, once.
    expect(bob.locator("#log li.gap")).to_have_text(re.compile("could not be recovered"))
    assert seriousErrors(alice) == [] and seriousErrors(bob) == []


def test_coming_back_after_a_drop_shows_what_was_missed_once(server, room, new_page):
    """
    After a dropped connection comes back (here by Retry now), it resumes where it left off: messages sent meanwhile appear once, marked as missed, and nothing already shown repeats.
    """
    url = pageURL(server, "?room=" + room)
    alice = join(new_page(url), "alice")
    bob = join(new_page(url), "bob")
    say(alice, "one")
    say(bob, "two")
    expect(bob.locator("#log li.msg")).to_have_count(2)
    # Bob's join must have been announced: on a busy machine a drop within
    # the presence interval would make it a join and leave nobody hears of.
    expect(alice.locator("#members .member-name")).to_have_text(["alice", "bob"])
    expect(bob.locator("#members .member-name")).to_have_text(["alice", "bob"])
    # Hold bob's automatic retry back so that "three" is surely sent while he
    # is away; the Retry now button brings him back.
    bob.evaluate("wsclient.chat.conn.backoff = () => 60000;"
                 "wsclient.chat.conn.ws.close(3000, 'test drop')")
    expect(bob.locator("#status")).to_have_attribute("data-state", "disconnected")
    expect(bob.locator("#notice-text")).to_contain_text(re.compile(r"Trying again in [1-6]?\d s"))
    expect(alice.locator("#members .member-name")).to_have_text(["alice"])
    say(alice, "three")
    expect(alice.locator("#log li.msg")).to_have_count(3)
    bob.click("#retry")
    expect(bob.locator("#status")).to_have_attribute("data-state", "connected")
    expect(bob.locator("#log li.msg .text")).to_have_text(["one", "two", "three"])
    expect(bob.locator("#log li.msg.history .text")).to_have_text(["three"])
    expect(bob.locator("#log li.divider")).to_have_text("missed while away")
    expect(bob.locator("#log li.msg.mine .text")).to_have_text(["two"])
    expect(alice.locator("#members .member-name")).to_have_text(["alice", "bob"])
    # It came back with ?since= and got exactly the gap (its own leave, then
    # "three"), not a fresh welcome.
    assert bob.evaluate("wsclient.chat.recoveries") == {"recovered": True, "missed": 2}
    expect(bob.locator("#log li.gap")).to_have_count(0)


def test_graceful_shutdown_is_shown_with_its_reason(service, new_page):
    """
    A SIGTERM shutdown shows the server's close code 1001 and reason, not a bare 1006.
    """
    chat = service()
    alice = join(new_page(pageURL(chat)), "alice")
    chat.stop(signal.SIGTERM)
    expect(alice.locator("#status")).to_have_attribute("data-state", "disconnected")
    expect(alice.locator("#status")).to_contain_text("1001")
    expect(alice.locator("#notice-text")).to_contain_text("server shutting down")


def freePort() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_server_is_reported_as_such(new_page):
    """
    When nothing listens where the page points, it says the server cannot be reached, not merely "disconnected".
    """
    port = freePort()
    origin = f"http://127.0.0.1:{port}"
    page = new_page()

    def serveClient(route):
        # The page itself comes from disk; everything else, like the
        # server, is not there.
        name = route.request.url[len(origin) + 1:].split("?")[0] or "index.html"
        if (STATIC / name).is_file():
            route.fulfill(path=str(STATIC / name))
        else:
            route.abort("connectionrefused")

    page.route(f"{origin}/**", serveClient)
    page.goto(f"{origin}/?room=kitchen")
    page.fill("#name-input", "alice")
    page.press("#name-input", "Enter")
    expect(page.locator("#status")).to_have_attribute("data-state", "disconnected")
    expect(page.locator("#notice")).to_have_attribute("data-kind", "unreachable")
    expect(page.locator("#notice-text")).to_contain_text(f"Cannot reach the server at 127.0.0.1:{port}")
    expect(page.locator("#send")).to_be_disabled()
    assert seriousErrors(page) == []


def test_refused_handshake_is_reported_as_a_refusal(service, new_page):
    """
    When the server answers HTTP but refuses the WebSocket handshake, the view says it was refused.
    """
    chat = service("--max-connections", "1")
    alice = join(new_page(pageURL(chat)), "alice")      # takes the only connection
    alice.click("#tab-echo")
    expect(alice.locator("#echo-status")).to_have_attribute("data-state", "disconnected")
    expect(alice.locator("#echo-notice")).to_have_attribute("data-kind", "refused")
    expect(alice.locator("#echo-notice")).to_contain_text("The server refused the echo connection")
    expect(alice.locator("#status")).to_have_attribute("data-state", "connected")
    assert seriousErrors(alice) == []


def test_page_served_by_the_service_may_connect_without_allowed_origin(service, new_page):
    """
    The service accepts WebSockets from the pages it serves itself, with no --allowed-origin.
    """
    chat = service()
    page = new_page(pageURL(chat))
    page.fill("#name-input", "alice")
    page.press("#name-input", "Enter")
    status = page.locator("#status")
    expect(status).not_to_have_attribute("data-state", "connecting")
    assert status.get_attribute("data-state") == "connected"
