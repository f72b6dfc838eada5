"""
The in-process room hub: membership, presence, fan-out, sequence numbers
and bounded history for rooms whose members all live in this process.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Callable, Mapping

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime
from zope.interface import implementer

from wsservice.interfaces import IRoomCounts, IRoomHub, IRoomMember
from wsservice.rooms.events import History, Prepare, RoomSnapshot, encodeEvent, withSeq
from wsservice.timefmt import isoUTC


class _Room:
    __slots__ = ("members", "history", "seq")

    def __init__(self, history: History) -> None:
        self.members: dict[IRoomMember, dict[str, Any]] = {}
        self.history = history
        self.seq = 0


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
    """

    def __init__(
        self,
        clock: IReactorTime,
        prepare: Prepare,
        historySize: int = 50,
        historyBytes: int = 1024 * 1024,
        maxIdleRooms: int = 1000,
        delivered: Callable[[int, int], None] = lambda size, count: None,
    ) -> None:
        self._clock = clock
        self._prepare = prepare
        self._historySize = historySize
        self._historyBytes = historyBytes
        self._maxIdleRooms = maxIdleRooms
        self._delivered = delivered
        self._rooms: dict[str, _Room] = {}
        self._idle: OrderedDict[str, None] = OrderedDict()

    def _room(self, name: str) -> _Room:
        room = self._rooms.get(name)
        if room is None:
            room = self._rooms[name] = _Room(History(self._historySize, self._historyBytes))
        self._idle.pop(name, None)
        return room

    def join(
        self, room: str, member: IRoomMember, info: Mapping[str, Any]
    ) -> Deferred[RoomSnapshot]:
        state = self._room(room)
        snapshot = RoomSnapshot(
            frames=state.history.frames(),
            members=list(state.members.values()),
            seq=state.seq,
        )
        state.members[member] = dict(info)
        return succeed(snapshot)

    def update(self, room: str, member: IRoomMember, info: Mapping[str, Any]) -> None:
        state = self._rooms.get(room)
        if state is not None and member in state.members:
            state.members[member] = dict(info)

    def leave(self, room: str, member: IRoomMember) -> None:
        state = self._rooms.get(room)
        if state is None or state.members.pop(member, None) is None:
            return
        if not state.members:
            self._retire(room, state)

    def _retire(self, name: str, state: _Room) -> None:
        if not state.history:
            del self._rooms[name]
            return
        self._idle[name] = None
        while len(self._idle) > self._maxIdleRooms:
            oldest, _ = self._idle.popitem(last=False)
            del self._rooms[oldest]

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

    def members(self, room: str) -> list[dict[str, Any]]:
        state = self._rooms.get(room)
        return list(state.members.values()) if state else []

    def roomCount(self) -> int:
        """
        How many rooms are held in memory, with members or history.
        """
        return len(self._rooms)
