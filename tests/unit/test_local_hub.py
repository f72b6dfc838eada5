"""
Unit tests of the in-process L{RoomHub}.
"""

from twisted.internet.task import Clock
from zope.interface.verify import verifyObject

from wsservice.testing import FakeConnection
from wsservice.rooms.local import RoomHub
from wsservice.interfaces import IRoomHub


def makeHub(**kw) -> RoomHub:
    return RoomHub(Clock(), lambda payload, isBinary: (payload, isBinary), **kw)


def test_hub_provides_the_interface():
    """
    RoomHub provides IRoomHub.
    """
    verifyObject(IRoomHub, makeHub())


def test_publish_reaches_every_member_once_with_increasing_seq():
    """
    Events reach every member of the room, in order, with seq 1, 2, 3.
    """
    hub = makeHub()
    a, b, other = FakeConnection(), FakeConnection(), FakeConnection()
    hub.join("r", a, {"id": a.id})
    hub.join("r", b, {"id": b.id})
    hub.join("elsewhere", other, {})
    for n in range(3):
        hub.publish("r", {"n": n})
    assert [e["seq"] for e in a.events()] == [1, 2, 3]
    assert a.events() == b.events()
    assert other.sent == []


def test_join_snapshot_has_history_members_and_seq():
    """
    A joiner's snapshot holds recorded events only, the members (itself
    included), the count and the last sequence number.
    """
    hub = makeHub(historySize=2)
    a = FakeConnection()
    hub.join("r", a, {"name": "a"})
    for n in range(3):
        hub.publish("r", {"n": n}, record=True)
    hub.publish("r", {"unrecorded": True})
    snapshot = []
    hub.join("r", FakeConnection(), {"name": "b"}).addCallback(snapshot.append)
    (snap,) = snapshot
    assert [e["n"] for e in snap.history] == [1, 2]
    assert snap.members == [{"name": "a"}, {"name": "b"}]
    assert (snap.seq, snap.count, snap.next) == (4, 2, None)


def test_rooms_without_members_or_history_are_freed():
    """
    A room is freed when its last member leaves and it has no history, and
    idle rooms with history are bounded.
    """
    hub = makeHub(maxIdleRooms=2)
    for n in range(10):
        c = FakeConnection()
        hub.join(f"room{n}", c, {})
        if n % 2:
            hub.publish(f"room{n}", {"x": 1}, record=True)
        hub.leave(f"room{n}", c)
    assert hub.roomCount() == 2


def test_leave_is_idempotent_and_update_changes_presence():
    """
    Leaving twice is harmless; update replaces a member's presence.
    """
    hub = makeHub()
    a = FakeConnection()
    hub.join("r", a, {"name": "x"})
    hub.update("r", a, {"name": "y"})
    assert hub.members("r") == [{"name": "y"}]
    hub.leave("r", a)
    hub.leave("r", a)
    assert hub.members("r") == []


def test_history_is_bounded_in_bytes_as_well_as_count():
    """
    A room's history drops its oldest events to stay within historyBytes,
    so a newcomer's history batch never exceeds it.
    """
    hub = makeHub(historySize=50, historyBytes=1000)
    hub.join("r", FakeConnection(), {})
    for n in range(20):
        hub.publish("r", {"n": n, "pad": "x" * 200}, record=True)
    snapshot = []
    hub.join("r", FakeConnection(), {}).addCallback(snapshot.append)
    history = snapshot[0].history
    assert 0 < len(history) < 5
    assert history[-1]["n"] == 19
