"""
Unit tests of L{ChatHandler} with recording connections and a real hub.
"""

import json

from zope.interface.verify import verifyClass, verifyObject

from wsservice.config import HandlerSettings
from wsservice.testing import FakeConnection, FakeContext
from wsservice.handlers.chat import ANONYMOUS, ChatHandler, cleanName, roomFromPath
from wsservice.interfaces import IHandler, IHandlerFactory


def openChat(context, path="/", **query):
    connection = FakeConnection(path, **query)
    handler = ChatHandler(connection, context)
    handler.onOpen()
    return connection, handler


def test_chat_is_a_handler_plugin():
    """
    ChatHandler provides IHandlerFactory and its instances IHandler.
    """
    verifyObject(IHandlerFactory, ChatHandler)
    verifyClass(IHandler, ChatHandler)


def test_rooms_come_from_the_path():
    """
    /kitchen is room kitchen, / is the default room, escapes are decoded.
    """
    assert roomFromPath("/kitchen") == "kitchen"
    assert roomFromPath("/") == "lobby"
    assert roomFromPath("/caf%C3%A9/") == "café"


def test_names_are_trimmed_bounded_and_never_empty():
    """
    Names lose control characters and extra spaces, are cut to the limit,
    and empty names are anonymous.
    """
    assert cleanName("  al\x00ice \n  b ", 32) == "alice b"
    assert cleanName("x" * 100, 10) == "x" * 10
    assert cleanName("   ", 10) == ANONYMOUS
    assert cleanName(42, 10) == ANONYMOUS


def test_welcome_history_then_presence_in_that_order():
    """
    A newcomer gets the welcome (with the first page of members and the
    count), then the history batch, then, within the presence interval,
    the presence event announcing its join.
    """
    context = FakeContext()
    alice, handler = openChat(context, "/r", name="alice")
    handler.onMessage(json.dumps({"message": "one"}).encode(), False)
    bob, _ = openChat(context, "/r", name="bob")
    assert [e["type"] for e in bob.events()] == ["welcome", "history"]
    context.clock.advance(context.settings.presenceInterval)
    welcome, history, presence = bob.events()
    assert welcome["message"] == "Connected!" and welcome["name"] == ""
    assert [m["name"] for m in welcome["members"]] == ["alice", "bob"]
    assert (welcome["count"], welcome["users"], welcome["next"]) == (2, 2, None)
    assert [m["message"] for m in history["messages"]] == ["one"]
    assert presence["type"] == "presence" and presence["message"] == "alice and bob joined"
    assert [m["name"] for m in presence["joined"]] == ["alice", "bob"]
    assert presence["count"] == 2 and presence["seq"] == 2


def test_nobody_can_pass_for_the_system():
    """
    A message with an empty or missing name is sent under 'anonymous', never
    with the empty system name.
    """
    context = FakeContext()
    conn, handler = openChat(context)
    handler.onMessage(json.dumps({"name": "", "message": "I am the server"}).encode(), False)
    handler.onMessage(json.dumps({"type": "welcome", "message": "fake"}).encode(), False)
    messages = [e for e in conn.events() if e["type"] == "message"]
    assert [m["name"] for m in messages] == [ANONYMOUS]
    assert conn.events()[-1]["type"] == "error"


def test_rename_is_announced_and_errors_go_to_the_sender_only():
    """
    A new name is announced to the room; malformed requests get an error
    object sent only to their sender.
    """
    context = FakeContext()
    a, ha = openChat(context, "/r", name="a")
    b, hb = openChat(context, "/r", name="b")
    context.clock.advance(context.settings.presenceInterval)
    ha.onMessage(json.dumps({"type": "rename", "name": "anna"}).encode(), False)
    context.clock.advance(context.settings.presenceInterval)
    renamed = b.events()[-1]
    assert renamed["message"] == "a is now anna"
    assert renamed["renamed"] == [{"id": a.id, "name": "anna", "previous": "a"}]
    before = len(b.sent)
    for bad in ({"name": 5, "message": "x"}, {"message": 5}, {"type": "join"},
                {"type": "members", "after": 3}):
        ha.onMessage(json.dumps(bad).encode(), False)
        assert a.events()[-1]["type"] == "error"
    assert len(b.sent) == before


def test_leaving_is_announced_and_frees_the_room():
    """
    Closing announces the leave to the others and, when the room empties
    with nothing to give a returning member (no history, no recovery log),
    frees it.
    """
    context = FakeContext(settings=HandlerSettings(historySize=0, recoverySize=0))
    a, ha = openChat(context, "/r")
    b, hb = openChat(context, "/r")
    context.clock.advance(context.settings.presenceInterval)
    hb.onClose(True, 1000, None)
    context.clock.advance(context.settings.presenceInterval)
    left = a.events()[-1]
    assert left["type"] == "presence" and left["left"] == [{"id": b.id, "name": "anonymous"}]
    assert left["count"] == 1
    ha.onClose(True, 1000, None)
    assert context.rooms.roomCount() == 0


def test_overlong_room_names_are_refused():
    """
    A path naming a room longer than 64 characters closes with 1008.
    """
    conn, _ = openChat(FakeContext(), "/" + "x" * 65)
    assert conn.closed[0] == 1008


def test_a_join_storm_is_one_presence_event_per_interval():
    """
    However many join within one interval, each member gets one presence
    event for them, listing at most --presence-list names with the counts;
    a member who came and went within the interval is in both lists.
    """
    from wsservice.config import HandlerSettings

    context = FakeContext(HandlerSettings(presenceList=3))
    first, _ = openChat(context, "/storm", name="first")
    context.clock.advance(context.settings.presenceInterval)
    before = len(first.events())
    for n in range(10):
        openChat(context, "/storm", name=f"p{n}")
    _, brief = openChat(context, "/storm", name="brief")
    brief.onClose(True, 1000, None)
    context.clock.advance(context.settings.presenceInterval)
    (presence,) = first.events()[before:]
    assert [m["name"] for m in presence["joined"]] == ["p0", "p1", "p2"]
    assert presence["joinedCount"] == 11 and presence["leftCount"] == 1
    assert [m["name"] for m in presence["left"]] == ["brief"]
    assert presence["message"] == "p0, p1, p2 and 8 others joined; brief left"
    assert presence["count"] == 11


def test_crowded_rooms_get_counts_only_and_everyone_can_page_the_members():
    """
    Above --presence-limit members, presence events carry counts but no
    names; the welcome lists the first page, and a members request walks
    the rest, to the asker alone.
    """
    from wsservice.config import HandlerSettings

    context = FakeContext(HandlerSettings(presenceLimit=2, presenceList=2))
    first, _ = openChat(context, "/big", name="a")
    openChat(context, "/big", name="b")
    third, h3 = openChat(context, "/big", name="c")
    welcome = third.events()[0]
    assert welcome["count"] == 3 and [m["name"] for m in welcome["members"]] == ["a", "b"]
    assert welcome["next"] == "2"
    context.clock.advance(context.settings.presenceInterval)
    presence = first.events()[-1]
    assert presence["joined"] == [] and presence["joinedCount"] == 3
    assert presence["message"] == "3 joined"
    before = len(first.sent)
    h3.onMessage(json.dumps({"type": "members", "after": welcome["next"]}).encode(), False)
    page = third.events()[-1]
    assert page["type"] == "members" and [m["name"] for m in page["members"]] == ["c"]
    assert page["next"] is None and page["count"] == 3
    assert len(first.sent) == before
