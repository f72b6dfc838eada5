"""
The room event model both hubs share: one encoding, the seq spliced in
last, and a history bounded in count and bytes.
"""

from __future__ import annotations

import json

from wsservice.rooms.events import History, RoomSnapshot, encodeEvent, withSeq


def test_an_event_is_stamped_once_and_its_seq_spliced_in_last():
    """
    encodeEvent stamps room and time (dropping any seq the event had) as
    compact UTF-8 JSON; withSeq adds the seq without re-encoding.
    """
    body = encodeEvent({"type": "message", "message": "héllo", "seq": 99}, "kitchen", "T")
    assert body == '{"type":"message","message":"héllo","room":"kitchen","time":"T"}'.encode()
    full = withSeq(body, 7)
    assert json.loads(full) == {"type": "message", "message": "héllo", "room": "kitchen",
                                "time": "T", "seq": 7}


def test_history_keeps_the_newest_within_count_and_bytes():
    """
    The oldest events go first, to stay within both bounds; a history of
    size 0 keeps nothing.
    """
    history = History(maxCount=3, maxBytes=10)
    for seq in range(1, 6):
        history.record(seq, b"%d" % seq)
    assert history.frames() == [b"3", b"4", b"5"]
    history.record(6, b"1234567890")
    assert history.entries() == [(6, b"1234567890")]
    nothing = History(maxCount=0, maxBytes=10)
    nothing.record(1, b"x")
    assert not nothing


def test_a_snapshot_decodes_its_frames_on_request():
    """
    A snapshot's history and members are its frames, decoded, in order.
    """
    snapshot = RoomSnapshot([b'{"id":"c1"}'], None, 1, 1, frames=[b'{"seq":1}', b'{"seq":2}'], seq=2)
    assert [e["seq"] for e in snapshot.history] == [1, 2]
    assert snapshot.members == [{"id": "c1"}]


def test_presence_changes_keep_the_state_at_the_end_of_the_interval():
    """
    Applied as clients apply them (joined, renamed, then left), a batch of
    changes leaves each member as it was at the end of the interval: joined
    then left is absent, left then joined again is present.
    """
    from wsservice.rooms.presence import PresenceChanges

    changes = PresenceChanges()
    changes.add("joined", {"id": "a", "name": "al"})
    changes.add("left", {"id": "a", "name": "al"})
    changes.add("left", {"id": "b", "name": "bo"})
    changes.add("joined", {"id": "b", "name": "bo"})
    event = changes.event(100, crowded=False)
    members = {"b": "bo"}
    for entry in event["joined"]:
        members[entry["id"]] = entry["name"]
    for entry in event["left"]:
        members.pop(entry["id"], None)
    assert members == {"b": "bo"}
    assert [e["id"] for e in event["left"]] == ["a"]
