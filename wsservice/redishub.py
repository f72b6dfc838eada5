"""
Rooms that span processes and machines through Redis: the same
L{IRoomHub} as L{wsservice.hub.RoomHub}, with membership, sequence numbers
and history kept in Redis and events fanned out over Redis pub/sub.

How it fits together (the keys and scripts are in L{wsservice.redisscripts}):

  - Each node subscribes to a room's channel while it has members in that
    room, and delivers what arrives there to its own members.  A publish
    never delivers locally directly: the publisher's node gets the event
    back from the channel like every other node, so each member receives
    each event exactly once, in seq order.
  - A joiner gets its snapshot (seq, history, members) from one atomic
    script, run only after the node's subscription is confirmed.  Until the
    snapshot is in, live events for the joiner are buffered; those with a
    seq at or below the snapshot's are dropped (they are in the snapshot),
    the rest follow the welcome.  Nothing is lost or repeated.
  - Presence: each member is a field of the room's members hash, owned by
    its node.  Every C{heartbeat} seconds a node pushes its own expiry
    (three heartbeats ahead) in a sorted set of nodes and reaps the nodes
    whose expiry has passed: one node removes each dead node's members from
    the rooms it had, and publishes a leave event for each.  So a crashed
    node's members are gone within four heartbeats.
  - Without Redis (down at start, or lost later) rooms keep working on this
    node alone: local delivery, local seq, local history.  Publishes made
    meanwhile are queued (bounded) and published to Redis once it is back;
    then this node re-registers its members and re-subscribes its rooms.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping
from urllib.parse import parse_qs, urlsplit

from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredList, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from zope.interface import implementer

from wsservice import redisscripts as scripts
from wsservice.hub import Prepare, RoomSnapshot, encodeEvent
from wsservice.interfaces import IRoomHub, IRoomMember
from wsservice.redislink import RedisLink
from wsservice.timefmt import isoUTC

CONNECTED = "connected"
DISCONNECTED = "disconnected"


@dataclass(frozen=True)
class BrokerAddress:
    """
    Where Redis is, from C{redis://HOST:PORT/DB[?heartbeat=S&prefix=P]}.

    @ivar heartbeat: seconds between liveness refreshes; a crashed node's
        members are removed after at most four of these.
    @ivar prefix: the Redis key prefix, so deployments can share a database.
    """

    host: str = "127.0.0.1"
    port: int = 6379
    db: int = 0
    heartbeat: float = 2.0
    prefix: str = "wss:"

    @classmethod
    def fromURL(cls, url: str) -> "BrokerAddress":
        """
        Parse a broker URL; C{ValueError} says what is wrong with it.
        """
        parts = urlsplit(url)
        if parts.scheme != "redis":
            raise ValueError(f"{url!r}: only redis://HOST:PORT/DB is supported")
        path = parts.path.strip("/")
        db = int(path) if path else 0
        query = parse_qs(parts.query)
        heartbeat = float(query.get("heartbeat", ["2"])[0])
        if not 0 < heartbeat <= 60:
            raise ValueError(f"{url!r}: heartbeat must be in (0, 60] seconds")
        return cls(
            host=parts.hostname or "127.0.0.1",
            port=parts.port or 6379,
            db=db,
            heartbeat=heartbeat,
            prefix=query.get("prefix", ["wss:"])[0],
        )

    def __str__(self) -> str:
        return f"redis://{self.host}:{self.port}/{self.db}"


@dataclass
class _Room:
    """
    This node's view of one room with local members.
    """

    active: dict[IRoomMember, dict[str, Any]] = field(default_factory=dict)
    pending: dict[IRoomMember, list[tuple[int | None, Any]]] = field(default_factory=dict)
    infos: dict[IRoomMember, dict[str, Any]] = field(default_factory=dict)
    fields: dict[IRoomMember, str] = field(default_factory=dict)
    remote: dict[str, dict[str, Any]] = field(default_factory=dict)
    history: deque = field(default_factory=deque)
    lastSeq: int = 0
    redisSeq: int = 0
    floor: int = 0
    floors: dict[IRoomMember, int] = field(default_factory=dict)
    catchup: list[tuple[bytes, bool, int | None]] | None = None
    subscribed: bool = False
    waiting: list[Deferred[None]] = field(default_factory=list)

    def isEmpty(self) -> bool:
        return not self.infos


def defaultDeparted(info: Mapping[str, Any]) -> dict[str, Any]:
    """
    The event published for a member whose node stopped answering: the chat
    protocol's leave event.
    """
    name = info.get("name", "")
    return {"type": "leave", "name": "", "message": f"{name} left",
            "user": dict(info), "reason": "node lost"}


@implementer(IRoomHub)
class RedisRoomHub(Service):
    """
    L{IRoomHub} across nodes through Redis; a service, because it owns
    connections and a heartbeat.
    """

    _log = Logger()

    def __init__(
        self,
        clock: IReactorTime,
        prepare: Prepare,
        connect: Callable[[Any], Any],
        address: BrokerAddress,
        historySize: int = 50,
        queueSize: int = 1000,
        delivered: Callable[[int, int], None] = lambda size, count: None,
        departed: Callable[[Mapping[str, Any]], dict[str, Any]] = defaultDeparted,
        drainTimeout: float = 10.0,
    ) -> None:
        """
        @param connect: makes the client endpoint for C{address}
            (C{lambda address: TCP4ClientEndpoint(reactor, ...)}).
        @param queueSize: publishes kept while Redis is unreachable; the
            oldest are dropped beyond it.
        @param drainTimeout: on stop, how long to wait for local members to
            leave (their leave events still go out) before leaving Redis.
        """
        self._clock = clock
        self._prepare = prepare
        self._connect = connect
        self.address = address
        self._keys = scripts.Keys(address.prefix, address.db)
        self._historySize = historySize
        self._delivered = delivered
        self._departed = departed
        self._drainTimeout = drainTimeout
        self.node = uuid.uuid4().hex[:12]
        self._fieldCounter = 0
        self._rooms: dict[str, _Room] = {}
        self._vacated: OrderedDict[str, list[dict[str, Any]]] = OrderedDict()
        self._maxVacated = 1000
        self._queue: deque[tuple[str, str, Any, bool]] = deque(maxlen=queueSize)
        self.droppedWhileDown = 0
        self._state = DISCONNECTED
        self._syncing = False
        self._generation = 0
        self._announcedDown = False
        self._idle: list[Deferred[None]] = []
        self._commands: RedisLink | None = None
        self._subscriber: RedisLink | None = None
        self._heartbeat: LoopingCall | None = None

    # -- state --------------------------------------------------------------

    def brokerState(self) -> str:
        """
        C{"connected"} while rooms span nodes through Redis, else
        C{"disconnected"} (rooms work on this node alone meanwhile).
        """
        return self._state

    def queuedCount(self) -> int:
        """
        Publishes waiting for Redis to come back.
        """
        return len(self._queue)

    def roomCount(self) -> int:
        """
        Rooms with members on this node.
        """
        return len(self._rooms)

    # -- lifecycle ----------------------------------------------------------

    def startService(self) -> None:
        super().startService()
        from txredisapi import RedisProtocol, SubscriberProtocol

        hub = self
        endpoint = self._connect(self.address)

        class _Subscriber(SubscriberProtocol):
            def messageReceived(self, pattern: Any, channel: str, message: str) -> None:
                hub._received(channel, message)

        db = self.address.db
        self._commands = RedisLink(
            self._clock, endpoint,
            lambda: RedisProtocol(dbid=db, convertNumbers=False, replyTimeout=10),
            lambda p: self._linkUp(), self._linkDown)
        self._subscriber = RedisLink(
            self._clock, endpoint,
            lambda: _Subscriber(convertNumbers=False),
            lambda p: self._linkUp(), self._linkDown)
        self._commands.start()
        self._subscriber.start()
        self._heartbeat = LoopingCall(self._beat)
        self._heartbeat.clock = self._clock
        self._heartbeat.start(self.address.heartbeat, now=False)

    def stopService(self) -> Deferred[None]:
        super().stopService()
        # The heartbeat goes on while members leave, so other nodes do not
        # reap them as lost in the meantime.
        d: Deferred[None] = Deferred()
        timer = self._clock.callLater(self._drainTimeout, lambda: d.called or d.callback(None))
        if not self._rooms:
            timer.cancel()
            d.callback(None)
        else:
            self._idle.append(d)
            d.addCallback(lambda _: timer.cancel() if timer.active() else None)
        d.addCallback(lambda _: self._goodbye())
        return d

    def _goodbye(self) -> Deferred[Any]:
        """
        Leave Redis: remove this node's members (if any are still here) and
        its liveness key, wait for Redis to confirm (at most the reply
        timeout), then close both connections.
        """
        if self._heartbeat is not None and self._heartbeat.running:
            self._heartbeat.stop()
        commands = self._cmd()
        self._state = DISCONNECTED
        sent: list[Deferred[Any]] = []
        if commands is not None:
            for room, state in self._rooms.items():
                for f in state.fields.values():
                    sent.append(self._eval(commands, scripts.PRESENCE,
                                           [self._keys.members(room), self._keys.channel(room)],
                                           [f, ""]))
            try:
                sent.append(commands.execute_command("ZREM", self._keys.nodes, self.node))
                sent.append(commands.execute_command("DEL", self._keys.nodeRooms(self.node)))
            except Exception:
                pass

        def close(_: Any) -> Deferred[Any]:
            links = [link.stop() for link in (self._commands, self._subscriber)
                     if link is not None]
            return DeferredList(links, consumeErrors=True)

        return DeferredList(sent, consumeErrors=True).addCallback(close)

    # -- connection state ---------------------------------------------------

    def _cmd(self) -> Any:
        return self._commands.protocol if self._commands is not None else None

    def _sub(self) -> Any:
        return self._subscriber.protocol if self._subscriber is not None else None

    def _linkDown(self, why: str) -> None:
        self._generation += 1
        self._syncing = False
        for state in self._rooms.values():
            state.subscribed = False
            waiting, state.waiting = state.waiting, []
            for d in waiting:
                d.errback(ConnectionError(why))
        wasConnected = self._state == CONNECTED
        self._state = DISCONNECTED
        if wasConnected:
            self._log.warn(
                "lost Redis at {address} ({why}); rooms continue on this node alone, "
                "reconnecting with backoff", address=str(self.address), why=why)
        elif not self._announcedDown:
            self._log.warn(
                "Redis at {address} is unreachable ({why}); rooms work on this node "
                "alone until it is, retrying with backoff", address=str(self.address), why=why)
        self._announcedDown = True

    def _linkUp(self) -> None:
        if self._cmd() is None or self._sub() is None or self._syncing:
            return
        if self._state == CONNECTED:
            return
        self._syncing = True
        self._resync(self._generation, 0)

    def _resync(self, generation: int, rounds: int) -> None:
        """
        Subscribe to every local room, then (in one reactor turn, so nothing
        interleaves) re-register this node and its members, replay the
        publishes queued during the outage and declare the broker connected.
        """
        if generation != self._generation:
            return
        unsubscribed = [room for room, state in self._rooms.items() if not state.subscribed]
        if unsubscribed and rounds >= 10:
            # Rooms keep appearing or SUBSCRIBE keeps failing: start over
            # on a new connection, after the link's backoff.
            self._log.warn("could not subscribe to {count} rooms; reconnecting",
                           count=len(unsubscribed))
            subscriber = self._sub()
            if subscriber is not None and subscriber.transport is not None:
                subscriber.transport.abortConnection()
            return
        if unsubscribed:
            waits = [self._subscribe(room, self._rooms[room]) for room in unsubscribed]
            DeferredList(waits, consumeErrors=True).addCallback(
                lambda _: self._resync(generation, rounds + 1))
            return
        commands = self._cmd()
        self._eval(commands, scripts.HEARTBEAT, [self._keys.nodes, self._keys.nodeRooms(self.node)],
                   [self.node, self._ttlMillis()]).addErrback(self._commandFailed)
        for room in list(self._rooms):
            self._register(commands, room, self._rooms[room], catchUp=True)
        queued = len(self._queue)
        while self._queue:
            kind, room, payload, record = self._queue.popleft()
            if kind == "e":
                self._publishRemote(commands, room, payload, record, replayed=True)
            else:
                self._publishBinaryRemote(commands, room, payload, replayed=True)
        self._syncing = False
        self._state = CONNECTED
        self._log.info(
            "connected to Redis at {address} as node {node}: {rooms} rooms, "
            "{queued} queued publishes replayed, {dropped} dropped",
            address=str(self.address), node=self.node, rooms=len(self._rooms),
            queued=queued, dropped=self.droppedWhileDown)
        self.droppedWhileDown = 0

    def _register(self, commands: Any, room: str, state: _Room, catchUp: bool) -> None:
        """
        Put this node's members of C{room} back into Redis; with C{catchUp},
        also deliver the recorded events this node missed while it was cut
        off (live events wait meanwhile, so the order holds).
        """
        args: list[Any] = [self.node, state.lastSeq, room]
        for member, info in state.infos.items():
            args += [state.fields[member], _dumps(info)]
        since = state.redisSeq
        if catchUp and state.catchup is None:
            state.catchup = []
        d = self._eval(commands, scripts.RESYNC,
                       [self._keys.members(room), self._keys.seq(room), self._keys.channel(room),
                        self._keys.history(room), self._keys.nodeRooms(self.node)],
                       args)

        def registered(reply: list[Any]) -> None:
            if self._rooms.get(room) is not state:
                return
            state.remote = _pairs(reply[0])
            if catchUp:
                missed = []
                for body in reply[1]:
                    seq = int(json.loads(body).get("seq", 0))
                    if seq > since:
                        missed.append((body.encode("utf-8"), False, seq))
                self._endCatchUp(state, missed)

        def failed(failure: Any) -> None:
            if catchUp:
                self._endCatchUp(state, [])
            self._commandFailed(failure)

        d.addCallbacks(registered, failed)

    def _endCatchUp(self, state: _Room, missed: list[tuple[bytes, bool, int | None]]) -> None:
        buffered, state.catchup = state.catchup or [], None
        top = 0
        for payload, isBinary, seq in missed:
            self._fanOut(state, payload, isBinary, seq)
            top = max(top, seq or 0)
            self._remember(state, seq or 0, payload.decode("utf-8"))
        state.lastSeq = max(state.lastSeq, top)
        state.redisSeq = max(state.redisSeq, top)
        state.floor = max(state.floor, top)
        for payload, isBinary, seq in buffered:
            if seq is None or seq > top:
                self._fanOut(state, payload, isBinary, seq)

    def _ttlMillis(self) -> int:
        return int(self.address.heartbeat * 3 * 1000)

    def _beat(self) -> None:
        commands = self._cmd()
        if self._state != CONNECTED or commands is None:
            return
        d = self._eval(commands, scripts.HEARTBEAT, [self._keys.nodes, self._keys.nodeRooms(self.node)],
                       [self.node, self._ttlMillis()])

        def checked(alive: Any) -> None:
            if int(alive) == 0 and self._state == CONNECTED and self._cmd() is commands:
                # Redis lost our registration (a restart, or we were too slow
                # and were reaped): register every member again.
                self._log.info("re-registering this node's members in Redis")
                for room in list(self._rooms):
                    self._register(commands, room, self._rooms[room], catchUp=False)

        d.addCallback(checked).addErrback(self._commandFailed)
        self._reap(commands)

    def _reap(self, commands: Any) -> None:
        """
        Remove the members of nodes whose heartbeat expired (this node does
        it for the dead nodes its script claims) and tell their rooms.
        """
        d = self._eval(commands, scripts.REAP, [self._keys.nodes],
                       [self._keys.prefix, self._keys.channelHead, 10])

        def reaped(flat: list[str]) -> None:
            for i in range(0, len(flat) - 2, 3):
                room, f, info = flat[i], flat[i + 1], json.loads(flat[i + 2])
                state = self._rooms.get(room)
                if state is not None:
                    state.remote.pop(f, None)
                self._log.info("member {field} of room {room} removed: its node stopped "
                               "sending heartbeats", field=f, room=room)
                self.publish(room, self._departed(info))

        d.addCallback(reaped).addErrback(self._commandFailed)

    def _eval(self, commands: Any, script: str, keys: list[str], args: list[Any]) -> Deferred[Any]:
        try:
            return commands.eval(script, keys, [str(a) for a in args])
        except Exception as e:  # txredisapi raises at once when not connected
            from twisted.internet.defer import fail
            return fail(e)

    def _commandFailed(self, failure: Any) -> None:
        # A command lost with its connection: the outage itself is logged
        # once by _linkDown; anything else is worth a line.
        from txredisapi import ConnectionError as RedisConnectionError

        if failure.check(RedisConnectionError, ConnectionError):
            return None
        self._log.failure("Redis command failed", failure)
        return None

    # -- subscriptions ------------------------------------------------------

    def _subscribe(self, room: str, state: _Room) -> Deferred[None]:
        """
        A L{Deferred} that fires once this node's subscription to C{room} is
        confirmed.
        """
        if state.subscribed:
            return succeed(None)
        d: Deferred[None] = Deferred()
        state.waiting.append(d)
        if len(state.waiting) == 1:
            subscriber = self._sub()
            generation = self._generation

            def confirmed(_: Any) -> None:
                if generation != self._generation or self._rooms.get(room) is not state:
                    return
                state.subscribed = True
                waiting, state.waiting = state.waiting, []
                for w in waiting:
                    w.callback(None)

            def failed(failure: Any) -> None:
                waiting, state.waiting = state.waiting, []
                for w in waiting:
                    w.errback(failure)

            try:
                subscriber.subscribe(self._keys.channel(room)).addCallbacks(confirmed, failed)
            except Exception as e:
                from twisted.python.failure import Failure
                failed(Failure(e))
        return d

    def _unsubscribe(self, room: str) -> None:
        subscriber = self._sub()
        if subscriber is not None:
            try:
                subscriber.unsubscribe(self._keys.channel(room)).addErrback(lambda f: None)
            except Exception:
                pass

    def _received(self, channel: str, message: str) -> None:
        try:
            self._dispatch(channel, message)
        except Exception:
            self._log.failure("bad message on {channel}", channel=channel)

    def _dispatch(self, channel: str, message: str) -> None:
        room = self._keys.roomOf(channel)
        state = self._rooms.get(room) if room is not None else None
        if state is None:
            return
        header, _, body = message.partition("\n")
        words = header.split(" ")
        if words[0] == "e":
            seq, recorded, origin, replayed = int(words[1]), words[2] == "1", words[3], words[4] == "1"
            state.lastSeq = max(state.lastSeq, seq)
            state.redisSeq = max(state.redisSeq, seq)
            if recorded:
                self._remember(state, seq, body)
            if replayed and origin == self.node:
                # Delivered here when it was published, during the outage.
                return
            self._fanOut(state, body.encode("utf-8"), False, seq)
        elif words[0] == "b":
            if words[1] == self.node and len(words) > 2 and words[2] == "1":
                return
            self._fanOut(state, base64.b64decode(body), True, None)
        elif words[0] == "p":
            f = words[1]
            if f.split("/", 1)[0] == self.node:
                return
            if body:
                state.remote[f] = json.loads(body)
            else:
                state.remote.pop(f, None)

    def _remember(self, state: _Room, seq: int, body: str) -> None:
        if self._historySize:
            state.history.append((seq, body))
            while len(state.history) > self._historySize:
                state.history.popleft()

    def _fanOut(self, state: _Room, payload: bytes, isBinary: bool, seq: int | None) -> None:
        if state.catchup is not None:
            state.catchup.append((payload, isBinary, seq))
            return
        if seq is not None and seq <= state.floor:
            return  # already delivered by a catch-up from the history
        prepared = self._prepare(payload, isBinary)
        members = list(state.active)
        floors = state.floors
        for member in members:
            if floors and member in floors and seq is not None:
                # Pub/sub and replies travel on two sockets: an event older
                # than this member's snapshot may still be on its way.
                if seq <= floors[member]:
                    continue
                del floors[member]
            member.deliver(prepared)
        for buffer in state.pending.values():
            buffer.append((seq, prepared))
        self._delivered(len(payload), len(members))

    # -- IRoomHub -----------------------------------------------------------

    def _newField(self) -> str:
        self._fieldCounter += 1
        return f"{self.node}/{self._fieldCounter}"

    def join(self, room: str, member: IRoomMember, info: Mapping[str, Any]) -> Deferred[RoomSnapshot]:
        state = self._rooms.get(room)
        if state is None:
            state = self._rooms[room] = _Room()
            self._vacated.pop(room, None)
        state.pending[member] = []
        state.infos[member] = dict(info)
        f = state.fields[member] = self._newField()
        result: Deferred[RoomSnapshot] = Deferred()
        commands = self._cmd()
        if self._state != CONNECTED or commands is None:
            self._activate(room, state, member, self._localSnapshot(state, member), result)
            return result
        generation = self._generation

        def snapshot(_: Any) -> Deferred[Any]:
            if generation != self._generation:
                raise ConnectionError("Redis connection changed")
            return self._eval(
                commands, scripts.JOIN,
                [self._keys.members(room), self._keys.seq(room), self._keys.history(room),
                 self._keys.channel(room), self._keys.nodes, self._keys.nodeRooms(self.node)],
                [f, _dumps(info), room])

        def taken(reply: list[Any]) -> None:
            seq, history, members = int(reply[0]), reply[1], _pairs(reply[2])
            own = f"{self.node}/"
            state.remote = {k: v for k, v in members.items() if not k.startswith(own)}
            newer = [(s, b) for s, b in state.history if s > seq]
            state.history = deque((0, b) for b in history)
            state.history.extend(newer)
            state.lastSeq = max(state.lastSeq, seq)
            state.redisSeq = max(state.redisSeq, seq)
            snap = RoomSnapshot(
                history=[json.loads(b) for b in history],
                members=[v for k, v in members.items() if k != f],
                seq=seq,
            )
            self._activate(room, state, member, snap, result)

        def fallback(failure: Any) -> None:
            # Redis went away mid-join: serve the joiner from this node.
            self._commandFailed(failure)
            self._activate(room, state, member, self._localSnapshot(state, member), result)

        self._subscribe(room, state).addCallback(snapshot).addCallbacks(taken, fallback)
        return result

    def _localSnapshot(self, state: _Room, member: IRoomMember) -> RoomSnapshot:
        members = [info for m, info in state.infos.items() if m is not member]
        members += list(state.remote.values())
        return RoomSnapshot(
            history=[json.loads(b) for _, b in state.history],
            members=members,
            seq=state.lastSeq,
        )

    def _activate(self, room: str, state: _Room, member: IRoomMember,
                  snap: RoomSnapshot, result: Deferred[RoomSnapshot]) -> None:
        buffered = state.pending.pop(member, None)
        if buffered is None:
            # It left before its snapshot arrived.
            result.callback(snap)
            return
        state.active[member] = state.infos[member]
        state.floors[member] = snap.seq
        result.callback(snap)
        for seq, prepared in buffered:
            if member not in state.active:
                break
            if seq is None or seq > snap.seq:
                member.deliver(prepared)

    def update(self, room: str, member: IRoomMember, info: Mapping[str, Any]) -> None:
        state = self._rooms.get(room)
        if state is None or member not in state.infos:
            return
        state.infos[member] = dict(info)
        if member in state.active:
            state.active[member] = state.infos[member]
        commands = self._cmd()
        if self._state == CONNECTED and commands is not None:
            self._eval(commands, scripts.PRESENCE,
                       [self._keys.members(room), self._keys.channel(room)],
                       [state.fields[member], _dumps(info)]).addErrback(self._commandFailed)

    def leave(self, room: str, member: IRoomMember) -> None:
        state = self._rooms.get(room)
        if state is None or member not in state.infos:
            return
        del state.infos[member]
        state.active.pop(member, None)
        state.pending.pop(member, None)
        state.floors.pop(member, None)
        f = state.fields.pop(member)
        commands = self._cmd()
        if self._state == CONNECTED and commands is not None:
            self._eval(commands, scripts.PRESENCE,
                       [self._keys.members(room), self._keys.channel(room)],
                       [f, ""]).addErrback(self._commandFailed)
        if state.isEmpty():
            del self._rooms[room]
            self._unsubscribe(room)
            if self._state == CONNECTED and commands is not None:
                try:
                    commands.execute_command("SREM", self._keys.nodeRooms(self.node), room
                                             ).addErrback(self._commandFailed)
                except Exception:
                    pass
            # So the leaver's own leave event can still count the members
            # on other nodes; the view stops being updated from here on.
            self._vacated[room] = list(state.remote.values())
            while len(self._vacated) > self._maxVacated:
                self._vacated.popitem(last=False)
            if not self._rooms and self._idle:
                # Next turn: the leaver still publishes its leave event.
                self._clock.callLater(0, self._becameIdle)

    def _becameIdle(self) -> None:
        if not self._rooms:
            idle, self._idle = self._idle, []
            for d in idle:
                if not d.called:
                    d.callback(None)

    def publish(self, room: str, event: Mapping[str, Any], record: bool = False) -> None:
        # Unlike the in-process hub, a room without local members still
        # publishes: members on other nodes (the last local member's leave
        # event is the common case) must hear it.
        state = self._rooms.get(room)
        stamped = {k: v for k, v in event.items() if k != "seq"}
        stamped.update(room=room, time=isoUTC(self._clock.seconds()))
        body = encodeEvent(stamped).decode("utf-8")
        commands = self._cmd()
        if self._state == CONNECTED and commands is not None:
            self._publishRemote(commands, room, body, record, replayed=False)
            return
        self._enqueue(("e", room, body, record))
        if state is None:
            return
        state.lastSeq += 1
        full = f'{body[:-1]},"seq":{state.lastSeq}}}'
        if record:
            self._remember(state, state.lastSeq, full)
        self._fanOut(state, full.encode("utf-8"), False, state.lastSeq)

    def _publishRemote(self, commands: Any, room: str, body: str, record: bool,
                       replayed: bool) -> None:
        state = self._rooms.get(room)
        floor = state.lastSeq if state is not None else 0
        self._eval(
            commands, scripts.PUBLISH,
            [self._keys.seq(room), self._keys.history(room), self._keys.channel(room)],
            [body, int(record), self._historySize, floor, self.node, int(replayed)],
        ).addErrback(self._commandFailed)

    def publishBinary(self, room: str, data: bytes) -> None:
        state = self._rooms.get(room)
        commands = self._cmd()
        if self._state == CONNECTED and commands is not None:
            self._publishBinaryRemote(commands, room, data, replayed=False)
            return
        self._enqueue(("b", room, data, False))
        if state is not None:
            self._fanOut(state, data, True, None)

    def _publishBinaryRemote(self, commands: Any, room: str, data: bytes, replayed: bool) -> None:
        message = f"b {self.node} {int(replayed)}\n" + base64.b64encode(data).decode("ascii")
        try:
            commands.publish(self._keys.channel(room), message).addErrback(self._commandFailed)
        except Exception:
            pass

    def _enqueue(self, item: tuple[str, str, Any, bool]) -> None:
        if len(self._queue) == self._queue.maxlen:
            self.droppedWhileDown += 1
        self._queue.append(item)

    def members(self, room: str) -> list[dict[str, Any]]:
        state = self._rooms.get(room)
        if state is None:
            return list(self._vacated.get(room, ()))
        return [*state.infos.values(), *state.remote.values()]


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _pairs(flat: list[Any]) -> dict[str, Any]:
    """
    A flat C{[field, JSON, field, JSON, ...]} reply as a dict of decoded
    values.
    """
    return {flat[i]: json.loads(flat[i + 1]) for i in range(0, len(flat) - 1, 2)}
