"""
The chat view in a real browser against the real service: people, rooms,
history, names and untrusted text.
"""

from __future__ import annotations

import re

from playwright.sync_api import expect

from tests.e2e.support import XSS, join, pageURL, say

TIME = re.compile(r"\d{1,2}[:.]\d{2}")


def test_two_people_see_each_others_messages_with_names_and_times(server, room, new_page):
    """
    Two people in one room see both messages with the sender's name and a time, their own ones marked as theirs, and the page fetches nothing from another host.
    """
    alice = join(new_page(pageURL(server, "?room=" + room)), "alice")
    bob = join(new_page(pageURL(server, "?room=" + room)), "bob")
    say(alice, "dinner is ready")
    say(bob, "coming!")
    for page in (alice, bob):
        messages = page.locator("#log li.msg")
        expect(messages).to_have_count(2)
        expect(messages.locator(".who")).to_have_text(["alice", "bob"])
        expect(messages.locator(".text")).to_have_text(["dinner is ready", "coming!"])
        for time in messages.locator("time.time").all():
            expect(time).to_have_text(TIME)
            expect(time).to_have_attribute("datetime", re.compile(r"^\d{4}-\d\d-\d\dT"))
        expect(page.locator("#members .member-name")).to_have_text(["alice", "bob"])
        expect(page.locator("#room-name")).to_have_text("#" + room)
    expect(alice.locator("#log li.msg.mine .text")).to_have_text(["dinner is ready"])
    expect(bob.locator("#log li.msg.mine .text")).to_have_text(["coming!"])
    assert alice.evaluate("wsclient.chat.conn.ws.protocol") == "chat"
    assert alice.errors == [] and bob.errors == []
    origin = f"127.0.0.1:{server.port}/"
    assert [u for u in alice.requests if not u.split("://", 1)[-1].startswith(origin)] == []
    assert f"ws://{origin}{room}?name=alice" in alice.requests


def test_newcomer_gets_history_and_members_and_other_rooms_see_nothing(server, room, new_page):
    """
    A third person gets the room's history, marked as history, and the member list; a person in another room sees none of it.
    """
    alice = join(new_page(pageURL(server, "?room=" + room)), "alice")
    bob = join(new_page(pageURL(server, "#" + room)), "bob")
    say(alice, "first")
    say(bob, "second")
    expect(alice.locator("#log li.msg")).to_have_count(2)

    carol = join(new_page(pageURL(server, "?room=" + room)), "carol")
    expect(carol.locator("#log li.msg.history .text")).to_have_text(["first", "second"])
    expect(carol.locator("#members .member-name")).to_have_text(["alice", "bob", "carol"])
    expect(carol.locator("#member-count")).to_have_text("3")
    say(carol, "third")
    expect(carol.locator("#log li.msg:not(.history) .text")).to_have_text(["third"])
    expect(alice.locator("#log li.msg .text")).to_have_text(["first", "second", "third"])
    expect(alice.locator("#log li.msg.history")).to_have_count(0)
    expect(alice.locator("#members .member-name")).to_have_text(["alice", "bob", "carol"])

    dave = join(new_page(pageURL(server, f"?room={room}-garden")), "dave")
    expect(dave.locator("#members .member-name")).to_have_text(["dave"])
    say(dave, "anyone?")
    expect(dave.locator("#log li.msg .text")).to_have_text(["anyone?"])
    expect(carol.locator("#log li.msg")).to_have_count(3)

    bob.context.close()
    expect(alice.locator("#members .member-name")).to_have_text(["alice", "carol"])
    expect(alice.locator("#log li.sys.presence").filter(has_text="bob left")).to_have_count(1)


def test_room_is_switched_in_the_page_and_by_history(server, room, new_page):
    """
    Entering another room reconnects there and pushes its URL; going back returns to the first room.
    """
    alice = join(new_page(pageURL(server, "?room=" + room)), "alice")
    say(alice, "in the kitchen")
    expect(alice.locator("#log li.msg")).to_have_count(1)
    alice.fill("#room-input", f"{room}-garden")
    alice.press("#room-input", "Enter")
    expect(alice).to_have_url(re.compile(rf"\?room={room}-garden$"))
    expect(alice.locator("#room-name")).to_have_text(f"#{room}-garden")
    expect(alice.locator("#status")).to_have_attribute("data-state", "connected")
    expect(alice.locator("#log li.msg")).to_have_count(0)
    say(alice, "in the garden")
    expect(alice.locator("#log li.msg .text")).to_have_text(["in the garden"])
    alice.go_back()
    expect(alice.locator("#room-name")).to_have_text("#" + room)
    expect(alice.locator("#room-input")).to_have_value(room)
    expect(alice.locator("#log li.msg.history .text")).to_have_text(["in the kitchen"])
    expect(alice.locator("#members .member-name")).to_have_text(["alice"])


def test_name_is_asked_once_and_a_rename_reaches_the_room(server, room, new_page):
    """
    The name is remembered across reloads, and changing it renames the person in everyone's member list.
    """
    alice = join(new_page(pageURL(server, "?room=" + room)), "alice")
    bob = join(new_page(pageURL(server, "?room=" + room)), "bob")
    alice.reload()
    expect(alice.locator("#name-dialog")).to_be_hidden()
    expect(alice.locator("#me-name")).to_have_text("alice")
    expect(alice.locator("#members .member.me .member-name")).to_have_text("alice")
    alice.click("#me")
    alice.fill("#name-input", "alicia")
    alice.press("#name-input", "Enter")
    for page in (alice, bob):
        expect(page.locator("#members .member-name")).to_have_text(["alicia", "bob"])
        # A rename within the presence interval of the reload's rejoin is
        # announced as that join under the new name.
        expect(page.locator("#log li.sys.presence").last).to_contain_text(
            re.compile("alice is now alicia|alicia joined"))
    expect(alice.locator("#me-name")).to_have_text("alicia")
    assert alice.evaluate("localStorage.getItem('wsservice.name')") == "alicia"


def test_markup_in_messages_and_names_is_shown_as_text(server, room, new_page):
    """
    An HTML payload as a message and as a name is shown as those characters: no element is made and no script runs.
    """
    mallory = join(new_page(pageURL(server, "?room=" + room)), XSS)
    bob = join(new_page(pageURL(server, "?room=" + room)), "bob")
    say(mallory, XSS)
    for page in (mallory, bob):
        expect(page.locator("#log li.msg .text")).to_have_text([XSS])
        expect(page.locator("#log li.msg .who")).to_have_text([XSS])
        expect(page.locator("#members .member-name").first).to_have_text(XSS)
        expect(page.locator("img")).to_have_count(0)
    # The one fixed wait: time for an onerror handler to fire if one existed.
    bob.wait_for_timeout(300)
    assert mallory.dialogs == [] and bob.dialogs == []
    assert mallory.errors == [] and bob.errors == []


def test_a_big_room_lists_its_members_page_by_page(service, new_page):
    """
    With more members than --presence-list, a newcomer sees the room's size,
    the first page and itself, and "Show more" fetches the rest.
    """
    server = service("--presence-list", "2")
    for name in ("ann", "ben", "cy"):
        join(new_page(pageURL(server, "?room=big")), name)
    dot = join(new_page(pageURL(server, "?room=big")), "dot")
    expect(dot.locator("#member-count")).to_have_text("4")
    expect(dot.locator("#members .member-name")).to_have_count(3)
    expect(dot.locator("#more-members")).to_be_visible()
    dot.click("#more-members")
    expect(dot.locator("#members .member-name")).to_have_text(["ann", "ben", "cy", "dot"])
    expect(dot.locator("#more-members")).to_be_hidden()
