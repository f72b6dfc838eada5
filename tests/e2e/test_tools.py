"""
The echo and clock views, each on its own WebSocket with its own
subprotocol.
"""

from __future__ import annotations

import re

from playwright.sync_api import expect

from tests.e2e.support import join, pageURL


def test_echo_round_trips_text_and_a_binary_file(server, room, new_page):
    """
    The echo view sends text and a file (as binary) and shows each coming back unchanged with its size.
    """
    page = join(new_page(pageURL(server, "?room=" + room)), "alice")
    page.click("#tab-echo")
    expect(page).to_have_url(re.compile(r"[?&]view=echo"))
    expect(page.locator("#echo-status")).to_have_attribute("data-state", "connected")
    assert page.evaluate("wsclient.echo.conn.ws.protocol") == "echo"

    text = "héllo ✓ <b>bold</b>"
    page.fill("#echo-text", text)
    page.press("#echo-text", "Enter")
    back = page.locator("#echo-log li.back.text")
    expect(back.locator(".text")).to_have_text(text)
    expect(back.locator(".size")).to_have_text(f"{len(text.encode())} bytes")
    expect(back.locator(".match")).to_have_text("✓ same")

    data = bytes(range(256)) * 5
    page.set_input_files("#echo-file", files=[
        {"name": "blob.bin", "mimeType": "application/octet-stream", "buffer": data}])
    back = page.locator("#echo-log li.back.binary")
    expect(back.locator(".size")).to_have_text("1,280 bytes")
    expect(back.locator(".text")).to_have_text(re.compile(r"^00 01 02 03 .* 0f …$"))
    expect(back.locator(".match")).to_have_text("✓ same")
    expect(page.locator("#echo-log li.sent.binary .text")).to_contain_text("blob.bin")
    expect(page.locator("#status")).to_have_attribute("data-state", "connected")
    assert page.errors == []


def test_clock_shows_server_time_and_the_interval_can_be_changed(server, room, new_page):
    """
    The clock view shows ticking server time, applies a new interval, and shows the server's error for a bad one.
    """
    page = join(new_page(pageURL(server, "?room=" + room)), "alice")
    page.click("#tab-clock")
    expect(page.locator("#clock-status")).to_have_attribute("data-state", "connected")
    assert page.evaluate("wsclient.clock.conn.ws.protocol") == "clock"
    expect(page.locator("#clock-current")).to_have_text("0.5")
    expect(page.locator("#clock-utc")).to_have_text(re.compile(r"^\d{4}-\d\d-\d\dT[\d:.]+Z \(UTC\)$"))
    expect(page.locator("#clock-time")).to_have_text(re.compile(r"^\d\d:\d\d:\d\d$"))

    page.fill("#clock-interval", "0.1")
    page.press("#clock-interval", "Enter")
    expect(page.locator("#clock-current")).to_have_text("0.1")
    ticks = page.locator("#clock-ticks").text_content()
    expect(page.locator("#clock-ticks")).not_to_have_text(ticks)
    first = page.locator("#clock-utc").text_content()
    expect(page.locator("#clock-utc")).not_to_have_text(first)

    page.fill("#clock-interval", "0")
    page.click("#clock-set")
    expect(page.locator("#clock-error")).to_be_visible()
    expect(page.locator("#clock-error")).to_contain_text("interval must be a number from 0.1 to 3600")
    expect(page.locator("#clock-current")).to_have_text("0.1")
    page.fill("#clock-interval", "2")
    page.click("#clock-set")
    expect(page.locator("#clock-current")).to_have_text("2")
    expect(page.locator("#clock-error")).to_be_hidden()
    assert page.errors == []
