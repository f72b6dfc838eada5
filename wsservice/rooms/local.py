"""
The in-process room hub: membership, presence, fan-out, sequence numbers
and bounded history for rooms whose members all live in this process.
"""

from __future__ import annotations

from collections import OrderedDict
from itertools import islice
from typing import Any, Callable, Mapping

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime
from zope.interface import implementer

from wsservice.interfaces import IRoomCounts, IRoomHub, IRoomMember
from wsservice.rooms.events import (
    History,
    MemberPage,
    Prepare,
    RoomSnapshot,
    encodeEvent,
    encodeJSON,
    withSeq,
)
from wsservice.rooms.presence import PresenceChanges
from wsservice.timefmt import isoUTC


class _Room:
    __slots__ = ("members", "users", "encoded", "history", "seq", "presence")

    def __init__(self, history: History) -> None:
        self.members: dict[IRoomMember, dict[str, Any]] = {}
        # Connections per user (presence id): several are one member.
        self.users: dict[Any, int] = {}
        # Each user's presence as JSON, encoded once: a page of members is a
        # join of these, whatever the room's size.
        self.encoded: dict[Any, bytes] = {}
        self.history = history
        self.seq = 0
        self.presence: PresenceChanges | None = None


@implementer(IRoomHub, IRoomCounts)
class RoomHub:
    """
    Rooms of members in this process.

    A room keeps at most C{historySize} recorded events and at most
    C{historyBytes} of them, so a newcomer's history batch is bounded too.
    A room exists while it has members or history.  Rooms without members
    keep their history only while they are among the C{maxIdleRooms} most
    recently used, so memory does not grow with the number of rooms ever
    used.

    Members come in pages of C{pageSize}; presence changes are announced
    once per C{presenceInterval} seconds per room, with their lists empty
    in rooms above C{crowdLimit} members (L{wsservice.rooms.presence}).
    """

    def __init__(
        self,
        clock: IReactorTime,
        prepare: Prepare,
        historySize: int = 50,
        historyBytes: int = 1024 * 1024,
        maxIdleRooms: int = 1000,
        delivered: Callable[[int, int], None] = lambda size, count: None,
        pageSize: int = 100,
        presenceInterval: float = 0.25,
        crowdLimit: int = 1000,
    ) -> None:
        self._clock = clock
        self._prepare = prepare
        self._historySize = historySize
        self._historyBytes = historyBytes
        self._maxIdleRooms = maxIdleRooms
        self._delivered = delivered
        self._pageSize = pageSize
        self._presenceInterval = presenceInterval
        self._crowdLimit = crowdLimit
        self._rooms: dict[str, _Room] = {}
        self._idle: OrderedDict[str, None] = OrderedDict()

    def _room(self, name: str) -> _Room:
        room = self._rooms.get(name)
        if room is None:
            room = self._rooms[name] = _Room(History(self._historySize, self._historyBytes))
        self._idle.pop(name, None)
        return room

    # -- membership ---------------------------------------------------------

    def join(
        self, room: str, member: IRoomMember, info: Mapping[str, Any]
    ) -> Deferred[RoomSnapshot]:
        state = self._room(room)
        state.members[member] = info = dict(info)
        user = _user(member, info)
        connections = state.users[user] = state.users.get(user, 0) + 1
        state.encoded[user] = encodeJSON(info)
        page = self._page(state, 0)
        return succeed(RoomSnapshot(page.memberFrames, page.next, page.count, page.users,
                                    frames=state.history.frames(), seq=state.seq,
                                    first=connections == 1))

    def update(self, room: str, member: IRoomMember, info: Mapping[str, Any]) -> None:
        state = self._rooms.get(room)
        if state is not None and member in state.members:
            state.members[member] = info = dict(info)
            state.encoded[_user(member, info)] = encodeJSON(info)

    def leave(self, room: str, member: IRoomMember) -> Deferred[bool]:
        state = self._rooms.get(room)
        info = state.members.pop(member, None) if state is not None else None
        if info is None:
            return succeed(False)
        user = _user(member, info)
        last = state.users[user] <= 1
        if last:
            del state.users[user], state.encoded[user]
        else:
            state.users[user] -= 1
        if not state.members:
            self._retire(room, state)
        return succeed(last)

    def _retire(self, name: str, state: _Room) -> None:
        if not state.history:
            del self._rooms[name]
            return
        self._idle[name] = None
        while len(self._idle) > self._maxIdleRooms:
            oldest, _ = self._idle.popitem(last=False)
            del self._rooms[oldest]

    def members(self, room: str) -> list[dict[str, Any]]:
        state = self._rooms.get(room)
        return list(state.members.values()) if state else []

    def memberPage(self, room: str, after: str | None = None) -> Deferred[MemberPage]:
        """
        A page of members; the cursor is an offset, so a member who leaves
        while a client pages may move one of the rest onto a page it has
        already read (listed twice, never missed).
        """
        state = self._rooms.get(room)
        if state is None:
            return succeed(MemberPage((), None, 0, 0))
        try:
            offset = max(0, int(after or 0))
        except ValueError:
            offset = 0
        return succeed(self._page(state, offset))

    def _page(self, state: _Room, offset: int) -> MemberPage:
        users = len(state.users)
        frames = list(islice(state.encoded.values(), offset, offset + self._pageSize))
        end = offset + len(frames)
        return MemberPage(frames, str(end) if end < users else None, len(state.members), users)

    def roomCount(self) -> int:
        """
        How many rooms are held in memory, with members or history.
        """
        return len(self._rooms)

    # -- presence -----------------------------------------------------------

    def announce(self, room: str, change: str, info: Mapping[str, Any]) -> None:
        state = self._rooms.get(room)
        if state is None:
            return
        if state.presence is None:
            state.presence = PresenceChanges()
            state.presence.timer = self._clock.callLater(
                self._presenceInterval, self._announceNow, room, state)
        state.presence.add(change, info)

    def _announceNow(self, room: str, state: _Room) -> None:
        changes, state.presence = state.presence, None
        if self._rooms.get(room) is not state or not state.members or not changes:
            return
        count = len(state.members)
        event = changes.event(self._pageSize, count > self._crowdLimit)
        event.update(count=count, users=len(state.users))
        self.publish(room, event)

    # -- events -------------------------------------------------------------

    def publish(self, room: str, event: Mapping[str, Any], record: bool = False) -> None:
        state = self._rooms.get(room)
        if state is None:
            return
        body = encodeEvent(event, room, isoUTC(self._clock.seconds()))
        state.seq += 1
        payload = withSeq(body, state.seq)
        if record:
            state.history.record(state.seq, payload)
        self._fanOut(state, payload, False)

    def publishBinary(self, room: str, data: bytes) -> None:
        state = self._rooms.get(room)
        if state is not None:
            self._fanOut(state, data, True)

    def _fanOut(self, state: _Room, payload: bytes, isBinary: bool) -> None:
        prepared = self._prepare(payload, isBinary)
        members = list(state.members)
        for member in members:
            member.deliver(prepared)
        self._delivered(len(payload), len(members))


def _user(member: IRoomMember, info: Mapping[str, Any]) -> Any:
    """
    The user a member's connection belongs to: its presence C{id}.
    """
    return info.get("id", id(member))
