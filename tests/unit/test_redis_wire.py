"""
The messages on a room's Redis channel, read back exactly as the scripts
and nodes write them, and refused when they are anything else.
"""

from __future__ import annotations

import pytest

from wsservice.rooms.redis.wire import (
    BinaryMessage,
    EventMessage,
    PresenceMessage,
    decodeChannelMessage,
    encodeBinaryMessage,
)


def test_each_kind_of_channel_message_is_read_back():
    """
    Event, binary and presence lines decode into their fields.
    """
    assert decodeChannelMessage('e 12 1 nodeA 0\n{"seq":12}') == EventMessage(
        12, True, "nodeA", False, b'{"seq":12}')
    assert decodeChannelMessage(encodeBinaryMessage("nodeB", True, b"\x00\xff")) == BinaryMessage(
        "nodeB", True, b"\x00\xff")
    joined = decodeChannelMessage('p nodeC/4\n{"name":"x"}')
    assert joined == PresenceMessage("nodeC/4", {"name": "x"}) and joined.node == "nodeC"
    assert decodeChannelMessage("p nodeC/4\n") == PresenceMessage("nodeC/4", None)


@pytest.mark.parametrize("text", ["", "x 1", "e 1 1 n", "e one 1 n 0\n{}", "b n 0\n!!!",
                                  "p a b\n{}", "p f\n{not json"])
def test_anything_else_is_a_value_error(text):
    """
    A malformed channel message raises ValueError, which the hub logs.
    """
    with pytest.raises(ValueError):
        decodeChannelMessage(text)
