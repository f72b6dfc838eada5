"""
Unit tests of the in-process L{RoomHub}.
"""

import json

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


def test_a_resume_gets_exactly_the_logged_events_after_its_seq():
    """
    A join with Resume(seq, epoch) of the room's epoch gets the events after
    seq; one past the log, or of another epoch, gets resumed False.
    """
    from wsservice.rooms.events import Resume

    hub = makeHub(logSize=3)
    a = FakeConnection()
    first = []
    hub.join("r", a, {"id": "a"}).addCallback(first.append)
    epoch = first[0].epoch
    for n in range(5):
        hub.publish("r", {"n": n})

    def resume(seq, epoch):
        got = []
        hub.join("r", FakeConnection(), {"id": "b"}, Resume(seq, epoch)).addCallback(got.append)
        return got[0]

    recent = resume(3, epoch)
    assert recent.resumed is True
    assert [json.loads(f)["n"] for f in recent.missed] == [3, 4]
    assert resume(5, epoch).resumed is True and resume(5, epoch).missed == ()
    assert resume(1, epoch).resumed is False
    assert resume(3, "another").resumed is False
    assert makeHub().join("x", FakeConnection(), {}).result.resumed is None


def test_a_repeated_idempotency_key_is_answered_as_the_first_for_five_minutes():
    """
    A publish with a key used in the last five minutes for the same room is
    not delivered again and is answered with the first one's seq; another
    room, or the key after five minutes, publishes anew.
    """
    clock = Clock()
    hub = RoomHub(clock, lambda payload, isBinary: (payload, isBinary))
    a = FakeConnection()
    hub.join("r", a, {"id": "a"})
    hub.join("s", FakeConnection(), {"id": "b"})
    first = hub.publish("r", {"n": 1}, idempotencyKey="k").result
    again = hub.publish("r", {"n": 1}, idempotencyKey="k").result
    assert (again.seq, again.epoch, again.time, again.duplicate) == (
        first.seq, first.epoch, first.time, True)
    assert hub.publish("s", {"n": 1}, idempotencyKey="k").result.duplicate is False
    assert len(a.events()) == 1
    clock.advance(301)
    assert hub.publish("r", {"n": 1}, idempotencyKey="k").result.seq == first.seq + 1


def test_a_room_past_its_ttl_starts_a_new_epoch():
    """
    A room without members left alone for longer than ttl loses its history
    and log: the next join sees seq 0 in a new epoch.
    """
    clock = Clock()
    hub = RoomHub(clock, lambda payload, isBinary: (payload, isBinary), ttl=60)
    a = FakeConnection()
    before = hub.join("r", a, {"id": "a"}).result
    hub.publish("r", {"n": 1}, record=True)
    hub.leave("r", a)
    clock.advance(30)
    b = FakeConnection()
    assert hub.join("r", b, {"id": "b"}).result.epoch == before.epoch
    hub.leave("r", b)
    clock.advance(61)
    after = hub.join("r", FakeConnection(), {"id": "c"}).result
    assert (after.seq, after.frames) == (0, []) and after.epoch != before.epoch


def test_the_admin_view_pages_rooms_and_reads_history_and_control():
    """
    roomList pages by name after a cursor; roomInfo and history describe
    one room (None for no room); control acts at once in this process.
    """
    from wsservice.interfaces import IRoomAdmin

    hub = makeHub()
    verifyObject(IRoomAdmin, hub)
    for name in ("b", "a", "c", "other"):
        hub.publish(name, {"n": name}, record=True)
    rooms, after = hub.roomList(limit=2).result
    assert [r["room"] for r in rooms] == ["a", "b"] and after == "b"
    rooms, after = hub.roomList(after=after, limit=2).result
    assert [r["room"] for r in rooms] == ["c", "other"] and after is None
    assert [r["room"] for r in hub.roomList(prefix="o").result[0]] == ["other"]
    assert hub.roomInfo("a").result["seq"] == 1 and hub.roomInfo("zz").result is None
    assert [json.loads(f)["n"] for f in hub.history("a").result["events"]] == ["a"]
    assert hub.history("a", since=1).result["events"] == [] and hub.history("zz").result is None
    told = []
    hub.onControl(told.append)
    assert hub.control({"op": "x"}).result == 1 and told == [{"op": "x"}]


def test_a_very_big_room_announces_presence_less_often():
    """
    A room of 5,000 gathers its presence changes for 1 s (so its events
    cost members at most 5,000 frames a second); a small room keeps the
    configured interval.
    """
    from wsservice.rooms.presence import presenceDelay

    assert presenceDelay(0.25, 10) == 0.25
    assert presenceDelay(0.25, 1250) == 0.25
    assert presenceDelay(0.25, 5000) == 1.0
    clock = Clock()
    hub = RoomHub(clock, lambda payload, isBinary: (payload, isBinary), presenceInterval=0.25)
    members = [FakeConnection() for _ in range(5000)]
    for m in members:
        hub.join("big", m, {"name": "m"})
    clock.advance(10)
    watcher = members[0]
    before = len(watcher.sent)
    hub.announce("big", "joined", {"id": "late", "name": "late"})
    clock.advance(0.9)
    assert len(watcher.sent) == before
    clock.advance(0.1)
    assert len(watcher.sent) == before + 1
    assert watcher.events()[-1]["type"] == "presence"
