"""
One node's view of a room that spans nodes (L{NodeRoom}): each local
member gets each event once, in seq order, after its own snapshot, even
when events race the snapshot or a catch-up after an outage.
"""

from __future__ import annotations

import json

from twisted.internet.defer import Deferred

from wsservice.rooms.events import History, RoomSnapshot
from wsservice.rooms.redis.view import NodeRoom


class Member:
    def __init__(self) -> None:
        self.got: list[int] = []

    def deliver(self, message: bytes) -> None:
        self.got.append(json.loads(message)["seq"])


def room() -> NodeRoom:
    return NodeRoom(lambda payload, isBinary: payload, History(50, 10**6), lambda s, c: None)


def event(seq: int) -> bytes:
    return b'{"seq":%d}' % seq


def join(view: NodeRoom, member: Member, seq: int) -> list[RoomSnapshot]:
    snapshots: list[RoomSnapshot] = []
    result: Deferred = Deferred().addCallback(snapshots.append)
    view.activate(member, RoomSnapshot([], None, 0, 0, seq=seq), result)
    return snapshots


def test_events_racing_a_snapshot_are_buffered_and_deduplicated():
    """
    Events that arrive before the joiner's snapshot wait for it; those at
    or below its seq are dropped, before and after it arrives.
    """
    view, member = room(), Member()
    view.add(member, {"name": "m"}, "n/1")
    view.received(5, False, event(5), True)
    view.received(6, False, event(6), True)
    assert member.got == []
    assert join(view, member, 5)[0].seq == 5
    view.received(4, False, event(4), True)
    view.received(7, False, event(7), True)
    assert member.got == [6, 7]


def test_a_catch_up_delivers_missed_events_then_held_ones_without_repeats():
    """
    During a catch-up live events wait; the missed ones are delivered, then
    the held ones newer than them, and nothing twice.
    """
    view, member = room(), Member()
    view.add(member, {}, "n/1")
    join(view, member, 0)
    view.received(1, True, event(1), True)
    view.beginCatchUp()
    view.received(3, True, event(3), True)
    view.received(4, True, event(4), True)
    view.endCatchUp([(event(2), False, 2), (event(3), False, 3)])
    view.received(3, True, event(3), True)
    assert member.got == [1, 2, 3, 4]


def test_an_outage_numbers_events_locally_and_a_leaver_gets_nothing():
    """
    Without Redis the node numbers its own events after the last seq it
    saw; a member that left receives nothing more.
    """
    view, stays, leaves = room(), Member(), Member()
    for n, member in enumerate((stays, leaves)):
        view.add(member, {}, f"n/{n}")
        join(view, member, 0)
    view.received(8, True, event(8), True)
    assert view.remove(leaves) == "n/1" and view.remove(leaves) is None
    view.publishLocally(b'{"x":1}', record=True)
    assert stays.got == [8, 9] and leaves.got == [8]
    assert [s for s, _ in view.history.entries()] == [8, 9]
