"""
Unit tests of L{ChatHandler} with recording connections and a real hub.
"""

import json

from zope.interface.verify import verifyClass, verifyObject

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


def test_welcome_history_then_join_in_that_order():
    """
    A newcomer gets the welcome, then the history batch, then its own join.
    """
    context = FakeContext()
    alice, handler = openChat(context, "/r", name="alice")
    handler.onMessage(json.dumps({"message": "one"}).encode(), False)
    bob, _ = openChat(context, "/r", name="bob")
    kinds = [e["type"] for e in bob.events()]
    assert kinds == ["welcome", "history", "join"]
    welcome, history, join = bob.events()
    assert welcome["message"] == "Connected!" and welcome["name"] == ""
    assert [m["name"] for m in welcome["members"]] == ["alice", "bob"]
    assert [m["message"] for m in history["messages"]] == ["one"]
    assert join["count"] == 2


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
    ha.onMessage(json.dumps({"type": "rename", "name": "anna"}).encode(), False)
    assert b.events()[-1]["message"] == "a is now anna"
    before = len(b.sent)
    for bad in ({"name": 5, "message": "x"}, {"message": 5}, {"type": "join"}):
        ha.onMessage(json.dumps(bad).encode(), False)
        assert a.events()[-1]["type"] == "error"
    assert len(b.sent) == before


def test_leaving_is_announced_and_frees_the_room():
    """
    Closing announces the leave to the others and, when the room empties
    with no history, frees it.
    """
    context = FakeContext()
    a, ha = openChat(context, "/r")
    b, hb = openChat(context, "/r")
    hb.onClose(True, 1000, None)
    assert a.events()[-1]["type"] == "leave" and a.events()[-1]["count"] == 1
    ha.onClose(True, 1000, None)
    assert context.rooms.roomCount() == 0


def test_overlong_room_names_are_refused():
    """
    A path naming a room longer than 64 characters closes with 1008.
    """
    conn, _ = openChat(FakeContext(), "/" + "x" * 65)
    assert conn.closed[0] == 1008


def test_presence_limit_keeps_big_rooms_cheap():
    """
    Above --presence-limit members, joins and leaves are not announced and
    the welcome lists only the most recent members, with the full count.
    """
    from wsservice.config import HandlerSettings

    context = FakeContext(HandlerSettings(presenceLimit=2))
    first, _ = openChat(context, "/big", name="a")
    openChat(context, "/big", name="b")
    third, h3 = openChat(context, "/big", name="c")
    welcome = third.events()[0]
    assert welcome["count"] == 3 and [m["name"] for m in welcome["members"]] == ["b", "c"]
    assert [e["type"] for e in third.events()] == ["welcome"]
    assert [e["user"]["name"] for e in first.events() if e["type"] == "join"] == ["a", "b"]
    h3.onClose(True, 1000, None)
    assert not [e for e in first.events() if e["type"] == "leave"]
