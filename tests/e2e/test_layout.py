"""
How the client looks: at phone width, and the screenshot in the docs.
"""

from __future__ import annotations

import os

from playwright.sync_api import expect

from tests.e2e.support import join, pageURL, say
from tests.support.processes import REPO

#: Elements sticking out to the right of the viewport (none may).
OVERFLOW = """() => {
  const width = document.documentElement.clientWidth;
  const out = [];
  for (const node of document.querySelectorAll("body *")) {
    const box = node.getBoundingClientRect();
    if (box.width && box.right > width + 0.5) out.push(`${node.tagName}#${node.id}.${node.className} ${box.right}`);
  }
  if (document.documentElement.scrollWidth > width) out.push(`page ${document.documentElement.scrollWidth}`);
  return out;
}"""


def test_phone_width_has_no_horizontal_overflow(server, new_page):
    """
    At 375 px wide, with long names and unbroken text, no view is wider than the screen and the composer stays on it.
    """
    long = "x" * 200
    page = new_page(pageURL(server, "?room=" + "r" * 64), width=375, height=667, is_mobile=True,
                    has_touch=True)
    expect(page.locator("#name-dialog")).to_be_visible()
    assert page.evaluate(OVERFLOW) == []
    join(page, "Maximilian Alexander-Longname")
    friend = join(new_page(pageURL(server, "?room=" + "r" * 64)), "y" * 32)
    say(friend, long)
    say(page, "https://example.com/" + "a/" * 60)
    expect(page.locator("#log li.msg")).to_have_count(2)
    assert page.evaluate(OVERFLOW) == []
    box = page.locator("#send").bounding_box()
    assert box is not None and box["x"] + box["width"] <= 375 and box["y"] + box["height"] <= 667
    for view in ("echo", "clock"):
        page.click(f"#tab-{view}")
        expect(page.locator(f"#{view}-status")).to_have_attribute("data-state", "connected")
        assert page.evaluate(OVERFLOW) == [], view
    page.click("#tab-echo")
    page.fill("#echo-text", long)
    page.press("#echo-text", "Enter")
    expect(page.locator("#echo-log li.back")).to_have_count(1)
    assert page.evaluate(OVERFLOW) == []
    assert page.errors == []


def test_docs_screenshot(server, new_page):
    """
    A chat with history, two people talking and the member list renders as in the README screenshot.
    """
    look = dict(locale="en-GB", timezone_id="UTC", color_scheme="light")
    url = pageURL(server, "?room=kitchen")
    alice = join(new_page(url, **look), "alice")
    bob = join(new_page(url, **look), "bob")
    say(alice, "Anyone up for pizza tonight?")
    say(bob, "Always. Margherita for me")
    say(alice, "Ordering at 7, I'll ask Carol too")
    expect(bob.locator("#log li.msg")).to_have_count(3)
    bob.context.close()
    carol = join(new_page(url, width=960, height=600, **look), "carol")
    expect(carol.locator("#log li.msg.history")).to_have_count(3)
    say(carol, "Count me in! Can we get one with mushrooms?")
    say(alice, "Sure, one margherita and one funghi then")
    say(carol, "<b>perfect</b> — see you at 7")
    expect(carol.locator("#log li.msg")).to_have_count(6)
    expect(carol.locator("#members .member-name")).to_have_text(["alice", "carol"])
    carol.locator("#msg").fill("I'll bring dessert")
    carol.locator("#msg").blur()
    target = REPO / ("docs" if os.environ.get("UPDATE_SCREENSHOT") == "1" else "artifacts")
    target.mkdir(exist_ok=True)
    carol.screenshot(path=str(target / "screenshot.png"))
    assert carol.errors == [] and alice.errors == []
