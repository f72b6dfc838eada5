"""
What the fuzz targets in C{tests/fuzz/} found, one test per finding, each
reduced to the smallest input that shows it.  The issue they come from:
"Bad input never costs anyone else": client input never closes the client
with 4000, never consumes a seq nobody receives, and the front door never
holds more than its bound.
"""

from __future__ import annotations

import json

from twisted.internet.address import IPv4Address
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from wsservice.handlers.chat import ChatHandler
from wsservice.handlers.clock import ClockHandler
from wsservice.testing import FakeConnection, FakeContext
from wsservice.web.frontdoor import MAX_HEAD, FrontDoorFactory


def chatRoom():
    """
    Alice and Bob in one room, Bob having seen Alice's first message.
    """
    context = FakeContext()
    alice, bob = FakeConnection("/kitchen"), FakeConnection("/kitchen")
    sender = ChatHandler(alice, context)
    sender.onOpen()
    ChatHandler(bob, context).onOpen()
    sender.onMessage(b'{"message": "first"}', False)
    return sender, alice, bob


def lastSeq(connection: FakeConnection) -> int:
    """
    The seq of the last room event C{connection} was sent.
    """
    return [e for e in connection.events() if "seq" in e][-1]["seq"]


def test_chat_message_with_a_lone_surrogate_is_relayed_replaced_and_costs_no_extra_seq():
    """
    A JSON escape of half a surrogate pair (valid JSON, valid UTF-8 on the
    wire) cannot be encoded as UTF-8 for the room: it reaches the room with
    U+FFFD in its place, the sender stays connected, and the room's seqs
    run on without a gap (it raised UnicodeEncodeError out of onMessage,
    which closed the sender with 4000).
    """
    sender, alice, bob = chatRoom()
    seen = lastSeq(bob)
    sender.onMessage(rb'{"message": "half \ud800 a pair"}', False)
    assert alice.closed is None
    assert bob.events()[-1]["message"] == "half \ufffd a pair" and lastSeq(bob) == seen + 1
    sender.onMessage(b'{"message": "next"}', False)
    assert bob.events()[-1]["message"] == "next" and lastSeq(bob) == seen + 2


def test_chat_text_nested_too_deep_to_parse_is_answered_not_raised():
    """
    Text nested 10,000 deep is too deep for json.loads, which raises
    RecursionError (not ValueError): the sender stays connected and is
    answered, as for any text that is not a JSON object (it is said to the
    room as a message) or with an C{error} frame to it alone, and the
    room's seqs go on without a gap.
    """
    sender, alice, bob = chatRoom()
    seen = lastSeq(bob)
    deep = b"[" * 10_000 + b"]" * 10_000
    sender.onMessage(deep, False)
    assert alice.closed is None
    reply = alice.events()[-1]
    if reply["type"] == "error":
        assert lastSeq(bob) == seen
    else:
        assert reply["type"] == "message" and reply["message"] == deep.decode()
        assert bob.events()[-1] == reply and reply["seq"] == seen + 1


def test_chat_members_cursor_past_the_largest_index_is_answered_not_raised():
    """
    A C{members} cursor beyond C{sys.maxsize} (a string of 20 digits) made
    the in-process hub's page raise ValueError from islice out of
    onMessage: the sender gets a reply of its own, a C{members} page or an
    C{error}, stays connected, and nobody else gets anything.
    """
    sender, alice, bob = chatRoom()
    before = len(bob.sent)
    sender.onMessage(b'{"type": "members", "after": "99999999999999999999"}', False)
    assert alice.closed is None
    assert alice.events()[-1]["type"] in ("members", "error")
    assert len(bob.sent) == before


def test_clock_json_nested_too_deep_to_parse_gets_an_error():
    """
    C{{"interval": ...}} nested 10,000 deep raised RecursionError out of the
    clock's onMessage: like any message that is not C{{"interval":
    seconds}}, it gets an C{error} frame, the connection stays open and it
    keeps ticking.
    """
    context = FakeContext()
    connection = FakeConnection("/", "clock")
    handler = ClockHandler(connection, context)
    handler.onOpen()
    handler.onMessage(b'{"interval":' * 10_000 + b"1" + b"}" * 10_000, False)
    assert connection.closed is None
    assert json.loads(connection.sent[-1])["type"] == "error"
    assert len(context.clock.getDelayedCalls()) == 1


class _Recording(Factory):
    """
    Counts the protocols the front door asks it for.
    """

    def __init__(self) -> None:
        self.built = 0

    def buildProtocol(self, addr):
        self.built += 1
        return Protocol()


def test_front_door_refuses_a_head_longer_than_its_bound_however_it_arrives():
    """
    A request head longer than MAX_HEAD (16 KiB) is answered with 431 by
    the front door itself, whether the head came in one piece or in 1 KiB
    pieces; an upgrade request went to the WebSocket factory instead, whose
    handshake parser buffers without a bound.
    """
    head = (b"GET /kitchen HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"X-Pad: " + b"a" * MAX_HEAD + b"\r\n\r\n")
    for size in (len(head), 1024):
        web, websocket = _Recording(), _Recording()
        door = FrontDoorFactory(web, websocket, Clock(), 10).buildProtocol(
            IPv4Address("TCP", "127.0.0.1", 1))
        transport = StringTransport()
        door.makeConnection(transport)
        for at in range(0, len(head), size):
            door.dataReceived(head[at:at + size])
        assert (web.built, websocket.built) == (0, 0), f"in pieces of {size}"
        assert transport.value().startswith(b"HTTP/1.1 431 ") and transport.disconnecting
