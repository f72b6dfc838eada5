"""
What the browser tests share: where Chromium is, how it is started, and the
steps a person takes in the chat client.
"""

from __future__ import annotations

import os
import shutil

from playwright.sync_api import Page, expect

CHROMIUM = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or "/usr/bin/chromium"

#: Playwright adds --headless, --no-sandbox and its own --disable-features
#: list; do not pass another --disable-features, Chromium keeps only the last.
CHROMIUM_ARGS = [
    # Without this Chromium 156 looks up Google hosts even with the flags below.
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
    "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
    "--no-first-run", "--disable-background-networking", "--disable-component-update",
    "--disable-sync",
]

#: Console errors that a test about lost or refused connections expects.
CONNECTION_NOISE = ("WebSocket connection to", "Failed to load resource", "HTTP 5")

XSS = "<img src=x onerror=alert(1)>"


def pageURL(service, query: str = "") -> str:
    """
    The address of the browser client served by C{service}, e.g.
    C{pageURL(service, "?room=kitchen")}.
    """
    return f"http://127.0.0.1:{service.port}/{query}"


def join(page: Page, name: str) -> Page:
    """
    Give the name the page asks for, and wait until the server has announced
    this person in the room (not merely until the socket is open).
    """
    expect(page.locator("#name-dialog")).to_be_visible()
    page.fill("#name-input", name)
    page.press("#name-input", "Enter")
    expect(page.locator("#status")).to_have_attribute("data-state", "connected")
    expect(page.locator("#members .member.me .member-name")).to_have_text(name)
    return page


def say(page: Page, text: str) -> None:
    """
    Type a message and press Enter.
    """
    page.fill("#msg", text)
    page.press("#msg", "Enter")


def seriousErrors(page: Page) -> list[str]:
    """
    The page's errors other than the console noise of a lost connection.
    """
    return [e for e in page.errors if not any(n in e for n in CONNECTION_NOISE)]
