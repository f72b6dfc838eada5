"""
The room event model both hubs share: how an event is stamped and encoded,
the snapshot a joiner gets, and the bounded history.

An event is encoded once, as compact UTF-8 JSON stamped with C{room} and
C{time} (L{encodeEvent}); its C{seq} is spliced in last (L{withSeq}), by
whoever assigns it: the local hub, or the broker's script in Redis.  So the
frame every member receives and the history entry a newcomer gets are the
same bytes, and an event that cannot be encoded never takes a C{seq}.
"""

from __future__ import annotations

import json
import secrets
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Sequence

#: Turns one payload into something every member can send without framing
#: it again (Autobahn's C{prepareMessage}).
Prepare = Callable[[bytes, bool], Any]


def encodeJSON(value: Any) -> bytes:
    """
    Compact UTF-8 JSON, the encoding of every frame a room sends.
    """
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def encodeEvent(event: Mapping[str, Any], room: str, time: str) -> bytes:
    """
    C{event} stamped with C{room} and C{time}, without any C{seq} it had,
    ready for L{withSeq}.
    """
    stamped = {k: v for k, v in event.items() if k != "seq"}
    stamped["room"] = room
    stamped["time"] = time
    return encodeJSON(stamped)


def withFields(body: bytes, fields: bytes) -> bytes:
    """
    The event L{encodeEvent} made, with more fields (C{b'"count":3'}).
    """
    return b"%s,%s}" % (body[:-1], fields)


def withSeq(body: bytes, seq: int, epoch: str = "") -> bytes:
    """
    The event L{encodeEvent} made, with the room's C{epoch} and its
    sequence number.
    """
    if epoch:
        return b'%s,"epoch":"%s","seq":%d}' % (body[:-1], epoch.encode("ascii"), seq)
    return b'%s,"seq":%d}' % (body[:-1], seq)


def newEpoch() -> str:
    """
    A fresh epoch: random, so two lives of one room never share one.
    """
    return secrets.token_hex(6)


@dataclass(frozen=True)
class MemberPage:
    """
    One page of a room's members.

    @ivar memberFrames: the members' presence dicts as compact JSON.
    @ivar next: the cursor of the next page, or C{None} after the last.
    @ivar count: how many members (connections) the room has.
    @ivar users: how many distinct users they are.
    """

    memberFrames: Sequence[bytes]
    next: str | None
    count: int
    users: int

    @property
    def members(self) -> list[dict[str, Any]]:
        return [json.loads(frame) for frame in self.memberFrames]


@dataclass(frozen=True)
class RoomSnapshot(MemberPage):
    """
    What a joiner learns about a room before live events reach it: the
    first page of members (itself included when it fits), the history and
    the seq.

    @ivar frames: the room's recorded events, oldest first, exactly as
        members received them.
    @ivar seq: the room's last sequence number.
    @ivar first: whether the joiner is the first connection of its user
        (its presence C{id}) in the room.
    @ivar epoch: the room's epoch: it changes whenever the room's history is
        lost, so a client resuming from another epoch cannot recover.
    @ivar resumed: for a joiner that asked to resume (L{Resume}): whether
        every event it missed is in L{missed}; C{None} if it did not ask.
    @ivar missed: the events after the resume point, as members received
        them, when L{resumed}.
    """

    frames: Sequence[bytes] = ()
    seq: int = 0
    first: bool = True
    epoch: str = ""
    resumed: bool | None = None
    missed: Sequence[bytes] = ()

    @property
    def history(self) -> list[dict[str, Any]]:
        """
        The recorded events, decoded.
        """
        return [json.loads(frame) for frame in self.frames]


@dataclass(frozen=True)
class Resume:
    """
    Where a reconnecting client left off: the last C{seq} it received, in
    the room's C{epoch}.
    """

    seq: int
    epoch: str


@dataclass(frozen=True)
class Published:
    """
    What a publish was given: its C{seq} and the room's C{epoch}, the
    server C{time} it carries, and whether it was a C{duplicate} of one
    with the same idempotency key (and so not published again).
    """

    seq: int
    epoch: str
    time: str
    duplicate: bool = False


class History:
    """
    A room's recorded events, oldest first, bounded in count and in bytes,
    so a newcomer's history batch is bounded too.
    """

    __slots__ = ("_entries", "_bytes", "maxCount", "maxBytes")

    def __init__(self, maxCount: int, maxBytes: int) -> None:
        self._entries: deque[tuple[int, bytes]] = deque()
        self._bytes = 0
        self.maxCount = maxCount
        self.maxBytes = maxBytes

    def __len__(self) -> int:
        return len(self._entries)

    def __bool__(self) -> bool:
        return bool(self._entries)

    def record(self, seq: int, frame: bytes) -> None:
        """
        Keep C{frame}, dropping the oldest events to stay within the bounds.
        """
        if not self.maxCount:
            return
        self._entries.append((seq, frame))
        self._bytes += len(frame)
        self._trim()

    def _trim(self) -> None:
        entries = self._entries
        while entries and (len(entries) > self.maxCount or self._bytes > self.maxBytes):
            self._bytes -= len(entries.popleft()[1])

    def replace(self, entries: Iterable[tuple[int, bytes]]) -> None:
        """
        Hold C{entries} (C{(seq, frame)}, oldest first) instead, within the
        bounds.
        """
        self._entries = deque(entries)
        self._bytes = sum(len(frame) for _, frame in self._entries)
        self._trim()

    def entries(self) -> list[tuple[int, bytes]]:
        return list(self._entries)

    def frames(self) -> list[bytes]:
        return [frame for _, frame in self._entries]

    def since(self, seq: int, last: int) -> list[bytes] | None:
        """
        The events after C{seq} up to the room's C{last} seq, if this history
        holds every one of them (it must hold every event, as a room's
        recovery log does); C{None} if some fell out of it.
        """
        if seq >= last:
            return [] if seq == last else None
        entries = self._entries
        if not entries or entries[0][0] > seq + 1 or entries[-1][0] != last:
            return None
        start = seq + 1 - entries[0][0]
        return [frame for _, frame in list(entries)[start:]]
