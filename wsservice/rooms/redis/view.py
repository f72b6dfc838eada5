"""
One node's view of one room that spans nodes: its local members, its copy
of the history, and the rule that keeps the room's order.

The rule: every local member receives each event once, in seq order, and
only after its own snapshot.  Three things threaten it, and L{NodeRoom}
handles each:

  - A joiner's snapshot comes back on the command connection while live
    events arrive on the subscriber connection.  Until its snapshot is in,
    a joiner's live events are buffered (L{NodeRoom.pending}); afterwards,
    events at or below its snapshot's seq are dropped for it
    (L{NodeRoom.floors}): they are in the snapshot, or older.
  - After an outage the node catches up from the room's history in Redis.
    Live events wait meanwhile (L{NodeRoom.catchup}), and events at or below
    what the catch-up delivered are dropped (L{NodeRoom.floor}).
  - During an outage the node numbers its own events (L{publishLocally}),
    and other nodes may give out the same numbers meanwhile: events from
    Redis at or below a number given out here are dropped
    (L{NodeRoom.floor}), so a member never sees a seq twice or going back.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

from twisted.internet.defer import Deferred

from wsservice.interfaces import IRoomMember
from wsservice.rooms.events import History, MemberPage, Prepare, RoomSnapshot, encodeJSON, newEpoch, withSeq


class NodeRoom:
    """
    This node's view of one room with local members.

    @ivar infos: every local member's presence, from its join on.
    @ivar pending: local members whose snapshot has not come back yet, with
        the events buffered for them.
    @ivar active: local members that receive live events.
    @ivar fields: each local member's field in the room's members hash.
    @ivar lastSeq: the highest seq this node's members have seen.
    @ivar redisSeq: the highest seq that came from Redis.
    @ivar lastCount: the room's member count Redis gave last.
    @ivar epoch: the room's epoch as Redis gave it last.
    @ivar subscribed: whether the node's subscription is confirmed.
    @ivar waiting: L{Deferred}s that fire once it is.
    """

    def __init__(self, prepare: Prepare, history: History,
                 delivered: Callable[[int, int], None]) -> None:
        self._prepare = prepare
        self._delivered = delivered
        self.history = history
        self.active: dict[IRoomMember, dict[str, Any]] = {}
        self.pending: dict[IRoomMember, list[tuple[int | None, Any]]] = {}
        self.infos: dict[IRoomMember, dict[str, Any]] = {}
        self.fields: dict[IRoomMember, str] = {}
        self.lastSeq = 0
        self.redisSeq = 0
        self.lastCount = 0
        self.epoch = ""
        self.floor = 0
        self.floors: dict[IRoomMember, int] = {}
        self.catchup: list[tuple[bytes, bool, int | None]] | None = None
        self.subscribed = False
        self.waiting: list[Deferred[None]] = []

    def isEmpty(self) -> bool:
        return not self.infos

    def members(self) -> list[dict[str, Any]]:
        return list(self.infos.values())

    def localUsers(self) -> dict[Any, dict[str, Any]]:
        """
        The local members by user (presence C{id}): several connections of
        one user are one member.
        """
        return {info.get("id", id(member)): info for member, info in self.infos.items()}

    def localPage(self, offset: int, size: int) -> MemberPage:
        """
        A page of the local members, for when Redis is out of reach.
        """
        users = list(self.localUsers().values())
        frames = [encodeJSON(i) for i in users[offset:offset + size]]
        end = offset + len(frames)
        return MemberPage(frames, str(end) if end < len(users) else None, len(self.infos), len(users))

    # -- membership ---------------------------------------------------------

    def add(self, member: IRoomMember, info: Mapping[str, Any], field: str) -> None:
        """
        A local member joins; its events are buffered until L{activate}.
        """
        self.pending[member] = []
        self.infos[member] = dict(info)
        self.fields[member] = field

    def update(self, member: IRoomMember, info: Mapping[str, Any]) -> bool:
        """
        Replace a local member's presence; C{False} if it is not here.
        """
        if member not in self.infos:
            return False
        self.infos[member] = dict(info)
        if member in self.active:
            self.active[member] = self.infos[member]
        return True

    def remove(self, member: IRoomMember) -> str | None:
        """
        A local member leaves; its field, or C{None} if it was not here.
        """
        if member not in self.infos:
            return None
        del self.infos[member]
        self.active.pop(member, None)
        self.pending.pop(member, None)
        self.floors.pop(member, None)
        return self.fields.pop(member)

    def adoptSnapshot(self, seq: int, frames: list[bytes]) -> None:
        """
        Take in what a join's snapshot says of the room: the history
        (keeping newer events this node already has) and the seq.
        """
        newer = [(s, frame) for s, frame in self.history.entries() if s > seq]
        self.history.replace([*((0, frame) for frame in frames), *newer])
        self.lastSeq = max(self.lastSeq, seq)
        self.redisSeq = max(self.redisSeq, seq)

    def ensureEpoch(self) -> None:
        """
        Give a room this node has never seen in Redis an epoch of its own,
        so events numbered here while Redis is out of reach carry one, and
        a client that saw them is never taken for one that saw Redis's.
        """
        if not self.epoch:
            self.epoch = newEpoch()

    def localSnapshot(self, pageSize: int, resume: Any = None) -> RoomSnapshot:
        """
        A snapshot from what this node knows, for a join while Redis is out
        of reach; it never recovers a resuming client (this node's view may
        lack events other nodes published).
        """
        page = self.localPage(0, pageSize)
        self.ensureEpoch()
        return RoomSnapshot(page.memberFrames, page.next, page.count, page.users,
                            frames=self.history.frames(), seq=self.lastSeq, epoch=self.epoch,
                            resumed=None if resume is None else False)

    def activate(self, member: IRoomMember, snapshot: RoomSnapshot,
                 result: Deferred[RoomSnapshot]) -> None:
        """
        Give a joiner its snapshot (through C{result}), then the events
        buffered for it that are newer than the snapshot.
        """
        buffered = self.pending.pop(member, None)
        if buffered is None:
            # It left before its snapshot arrived.
            result.callback(snapshot)
            return
        self.active[member] = self.infos[member]
        self.floors[member] = snapshot.seq
        result.callback(snapshot)
        for seq, prepared in buffered:
            if member not in self.active:
                break
            if seq is None or seq > snapshot.seq:
                member.deliver(prepared)

    # -- events -------------------------------------------------------------

    def received(self, seq: int, recorded: bool, body: bytes, deliver: bool) -> None:
        """
        An event came from Redis; C{deliver} is false for this node's own
        events from an outage, which its members have had already.
        """
        self.lastSeq = max(self.lastSeq, seq)
        self.redisSeq = max(self.redisSeq, seq)
        if recorded:
            self.history.record(seq, body)
        if deliver:
            self.fanOut(body, False, seq)

    def publishLocally(self, body: bytes, record: bool) -> int:
        """
        Number and deliver an event while Redis is out of reach, and return
        its seq; events from Redis with that seq or a lower one are not
        delivered after it.
        """
        if self.catchup is not None:
            # Redis went away mid catch-up: what it had sent goes first.
            self.endCatchUp([])
        self.lastSeq += 1
        self.ensureEpoch()
        payload = withSeq(body, self.lastSeq, self.epoch)
        if record:
            self.history.record(self.lastSeq, payload)
        self.fanOut(payload, False, self.lastSeq)
        self.floor = self.lastSeq
        return self.lastSeq

    def fanOut(self, payload: bytes, isBinary: bool, seq: int | None) -> None:
        """
        Deliver one event (C{seq}) or binary message (no C{seq}) to every
        local member that may have it now, and buffer it for the joiners.
        """
        if self.catchup is not None:
            self.catchup.append((payload, isBinary, seq))
            return
        if seq is not None and seq <= self.floor:
            return  # already delivered by a catch-up from the history
        prepared = self._prepare(payload, isBinary)
        members = list(self.active)
        floors = self.floors
        for member in members:
            if floors and member in floors and seq is not None:
                # Pub/sub and replies travel on two sockets: an event older
                # than this member's snapshot may still be on its way.
                if seq <= floors[member]:
                    continue
                del floors[member]
            member.deliver(prepared)
        for buffer in self.pending.values():
            buffer.append((seq, prepared))
        self._delivered(len(payload), len(members))

    # -- catching up after an outage ---------------------------------------

    def beginCatchUp(self) -> None:
        """
        Hold live events back until L{endCatchUp}.
        """
        if self.catchup is None:
            self.catchup = []

    def endCatchUp(self, missed: list[tuple[bytes, bool, int | None]]) -> None:
        """
        Deliver the recorded events missed during the outage, then the live
        events held back, without repeating any.
        """
        buffered, self.catchup = self.catchup or [], None
        top = 0
        for payload, isBinary, seq in missed:
            self.fanOut(payload, isBinary, seq)
            top = max(top, seq or 0)
            self.history.record(seq or 0, payload)
        self.lastSeq = max(self.lastSeq, top)
        self.redisSeq = max(self.redisSeq, top)
        self.floor = max(self.floor, top)
        for payload, isBinary, seq in buffered:
            if seq is None or seq > top:
                self.fanOut(payload, isBinary, seq)
