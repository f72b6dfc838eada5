"""
The messages on a room's Redis channel, read back exactly as the scripts
and nodes write them, and refused when they are anything else.
"""

from __future__ import annotations

import pytest

from wsservice.rooms.redis.wire import (
    BinaryMessage,
    EventBatch,
    decodeChannelMessage,
    encodeBinaryMessage,
)


def test_a_batch_of_events_is_read_back_with_its_seqs_and_flags():
    """
    An event line carries one turn's events, with consecutive seqs from the
    first and a flag digit each (odd: recorded).
    """
    batch = decodeChannelMessage(b'e 12 102 nodeA 0\n{"seq":12}\n{"seq":13}\n{"seq":14}')
    assert isinstance(batch, EventBatch) and batch.origin == b"nodeA" and not batch.replayed
    assert batch.events() == [(12, True, b'{"seq":12}'), (13, False, b'{"seq":13}'),
                              (14, False, b'{"seq":14}')]


def test_a_binary_message_is_read_back():
    """
    Binary messages travel as base64 and come back as the same bytes.
    """
    assert decodeChannelMessage(encodeBinaryMessage("nodeB", True, b"\x00\xff")) == BinaryMessage(
        b"nodeB", True, b"\x00\xff")


@pytest.mark.parametrize("text", [b"", b"x 1", b"e 1 1 n", b"e one 1 n 0\n{}", b"b n 0\n!!!",
                                  b"e 1 11 n 0\n{}", b"e 1 x n 0\n{}", b"p a\n{}"])
def test_anything_else_is_a_value_error(text):
    """
    A malformed channel message raises ValueError, which the hub logs.
    """
    with pytest.raises(ValueError):
        decodeChannelMessage(text)
