"""
The in-process room hub: membership, presence, fan-out, sequence numbers,
bounded history and recovery for rooms whose members all live in this
process.
"""

from __future__ import annotations

import bisect
from collections import OrderedDict
from itertools import islice
from typing import Any, Callable, Mapping

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime
from zope.interface import implementer

from wsservice.interfaces import IRoomAdmin, IRoomCounts, IRoomHub, IRoomMember
from wsservice.rooms.events import (
    History,
    MemberPage,
    Prepare,
    Published,
    Resume,
    RoomSnapshot,
    encodeEvent,
    encodeJSON,
    newEpoch,
    withSeq,
)
from wsservice.rooms.presence import PresenceChanges, presenceDelay
from wsservice.timefmt import isoUTC

#: How long an idempotency key is honoured (seconds).
IDEMPOTENCY_SECONDS = 300.0


class _Room:
    __slots__ = ("members", "users", "encoded", "history", "log", "seq", "epoch", "presence",
                 "touched")

    def __init__(self, history: History, log: History, now: float) -> None:
        self.members: dict[IRoomMember, dict[str, Any]] = {}
        # Connections per user (presence id): several are one member.
        self.users: dict[Any, int] = {}
        # Each user's presence as JSON, encoded once: a page of members is a
        # join of these, whatever the room's size.
        self.encoded: dict[Any, bytes] = {}
        self.history = history
        # Every event with a seq, for clients that come back (recovery).
        self.log = log
        self.seq = 0
        self.epoch = newEpoch()
        self.presence: PresenceChanges | None = None
        self.touched = now


@implementer(IRoomHub, IRoomCounts, IRoomAdmin)
class RoomHub:
    """
    Rooms of members in this process.

    A room keeps at most C{historySize} recorded events (chat messages) and
    at most C{historyBytes} of them, so a newcomer's history batch is
    bounded too, and a log of its last C{logSize} events of any kind, from
    which a client that comes back recovers what it missed.  A room exists
    while it has members or history; rooms without members keep it only
    while they are among the C{maxIdleRooms} most recently used and for
    C{ttl} seconds, so memory does not grow with the number of rooms ever
    used; one without members, history or log is freed at once.  A room that
    lost its history gets a new epoch.

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
        logSize: int = 1000,
        ttl: float = 86400.0,
    ) -> None:
        self._clock = clock
        self._prepare = prepare
        self._historySize = historySize
        self._historyBytes = historyBytes
        self._logSize = logSize
        self._ttl = ttl
        self._maxIdleRooms = maxIdleRooms
        self._delivered = delivered
        self._pageSize = pageSize
        self._presenceInterval = presenceInterval
        self._crowdLimit = crowdLimit
        self._rooms: dict[str, _Room] = {}
        self._idle: OrderedDict[str, None] = OrderedDict()
        self._published: OrderedDict[tuple[str, str], tuple[float, Published]] = OrderedDict()
        self._control: Callable[[Mapping[str, Any]], int] = lambda message: 0

    def _room(self, name: str) -> _Room:
        now = self._clock.seconds()
        room = self._rooms.get(name)
        if room is not None and not room.members and now - room.touched > self._ttl:
            room = None  # idle past its ttl: its history is gone
        if room is None:
            room = self._rooms[name] = _Room(
                History(self._historySize, self._historyBytes),
                History(self._logSize, 4 * self._historyBytes), now)
        room.touched = now
        self._idle.pop(name, None)
        return room

    # -- membership ---------------------------------------------------------

    def join(
        self, room: str, member: IRoomMember, info: Mapping[str, Any],
        resume: Resume | None = None,
    ) -> Deferred[RoomSnapshot]:
        state = self._room(room)
        state.members[member] = info = dict(info)
        user = _user(member, info)
        connections = state.users[user] = state.users.get(user, 0) + 1
        state.encoded[user] = encodeJSON(info)
        page = self._page(state, 0)
        resumed, missed = None, None
        if resume is not None:
            if resume.epoch == state.epoch:
                missed = state.log.since(resume.seq, state.seq)
            resumed = missed is not None
        return succeed(RoomSnapshot(page.memberFrames, page.next, page.count, page.users,
                                    frames=state.history.frames(), seq=state.seq,
                                    first=connections == 1, epoch=state.epoch,
                                    resumed=resumed, missed=missed or ()))

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
        # Kept while it has something to give: history to newcomers, or
        # its log to a last member who comes back.
        if not state.history and not state.log:
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
            offset = min(max(0, int(after or 0)), len(state.users))
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
                presenceDelay(self._presenceInterval, len(state.members)),
                self._announceNow, room, state)
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

    def publish(self, room: str, event: Mapping[str, Any], record: bool = False,
                idempotencyKey: str | None = None) -> Deferred[Published]:
        """
        Stamp and deliver C{event}.  An unrecorded event for a room nobody is
        in goes nowhere; a recorded one is kept for whoever comes.
        """
        now = self._clock.seconds()
        if idempotencyKey is not None:
            earlier = self._idempotent(room, idempotencyKey, now)
            if earlier is not None:
                return succeed(earlier)
        if room not in self._rooms and not record:
            return succeed(Published(0, "", isoUTC(now)))
        time = isoUTC(now)
        body = encodeEvent(event, room, time)
        state = self._room(room)
        state.seq += 1
        payload = withSeq(body, state.seq, state.epoch)
        state.log.record(state.seq, payload)
        if record:
            state.history.record(state.seq, payload)
        self._fanOut(state, payload, False)
        if not state.members:
            self._retire(room, state)
        published = Published(state.seq, state.epoch, time)
        if idempotencyKey is not None:
            self._published[(room, idempotencyKey)] = (now, published)
        return succeed(published)

    def _idempotent(self, room: str, key: str, now: float) -> Published | None:
        published = self._published
        while published:
            oldest = next(iter(published.values()))
            if now - oldest[0] <= IDEMPOTENCY_SECONDS and len(published) <= 100_000:
                break
            published.popitem(last=False)
        earlier = published.get((room, key))
        if earlier is None:
            return None
        first = earlier[1]
        return Published(first.seq, first.epoch, first.time, duplicate=True)

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

    # -- IRoomAdmin ---------------------------------------------------------

    def roomList(self, prefix: str = "", after: str | None = None,
                 limit: int = 100) -> Deferred[tuple[list[dict[str, Any]], str | None]]:
        names = sorted(n for n in self._rooms if n.startswith(prefix))
        start = bisect.bisect_right(names, after) if after is not None else 0
        chosen = names[start:start + limit]
        rooms = [self._summary(n, self._rooms[n]) for n in chosen]
        more = start + limit < len(names)
        return succeed((rooms, chosen[-1] if more and chosen else None))

    def _summary(self, name: str, state: _Room) -> dict[str, Any]:
        return {"room": name, "count": len(state.members), "users": len(state.users),
                "seq": state.seq, "epoch": state.epoch}

    def roomInfo(self, room: str) -> Deferred[dict[str, Any] | None]:
        state = self._rooms.get(room)
        if state is None:
            return succeed(None)
        page = self._page(state, 0)
        return succeed({**self._summary(room, state), "members": page.members, "next": page.next})

    def history(self, room: str, since: int = 0, limit: int = 100) -> Deferred[dict[str, Any] | None]:
        state = self._rooms.get(room)
        if state is None:
            return succeed(None)
        frames = [frame for seq, frame in state.log.entries() if seq > since][:limit]
        return succeed({"room": room, "epoch": state.epoch, "seq": state.seq, "events": frames})

    def control(self, message: Mapping[str, Any]) -> Deferred[int]:
        """
        There is one process: it acts on C{message} at once.
        """
        self._control(message)
        return succeed(1)

    def onControl(self, handle: Callable[[Mapping[str, Any]], int]) -> None:
        self._control = handle

    def nodes(self) -> Deferred[list[str]]:
        return succeed([])


def _user(member: IRoomMember, info: Mapping[str, Any]) -> Any:
    """
    The user a member's connection belongs to: its presence C{id}.
    """
    return info.get("id", id(member))
