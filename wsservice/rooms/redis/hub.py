"""
L{RedisRoomHub}: the L{IRoomHub} of rooms that span processes and machines,
with membership, sequence numbers and history kept in Redis and events
fanned out over Redis pub/sub (how, in L{wsservice.rooms.redis}).
"""

from __future__ import annotations

import json
import uuid
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredList, fail, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from wsservice.interfaces import IBrokerStatus, IRoomAdmin, IRoomCounts, IRoomHub, IRoomMember
from wsservice.process import atMost
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
    withFields,
)
from wsservice.rooms.presence import PresenceChanges, presenceDelay
from wsservice.rooms.redis import scripts
from wsservice.rooms.redis.link import (
    SUBSCRIBE_BATCH,
    RedisLink,
    SentinelEndpoint,
    SentinelWatch,
    subscriber,
)
from wsservice.rooms.redis.view import NodeRoom
from wsservice.rooms.redis.wire import (
    BinaryMessage,
    BrokerAddress,
    EventBatch,
    Keys,
    decodeChannelMessage,
    encodeBinaryMessage,
)
from wsservice.timefmt import isoUTC

CONNECTED = "connected"
DISCONNECTED = "disconnected"

#: Flags of an event in a publish: kept in the history; given the room's counts.
RECORD, COUNTED = 1, 2

#: Heartbeats without our own ping coming back before the subscription is
#: taken for dead.
PING_GRACE = 3


@implementer(IRoomHub, IRoomCounts, IBrokerStatus, IRoomAdmin)
class RedisRoomHub(Service):
    """
    L{IRoomHub} across nodes through Redis; a service, because it owns
    connections and a heartbeat.

    Everything this node publishes in one reactor turn leaves at its end:
    each room's events as one script call and one channel message, so a
    receiving node delivers them in one turn too, and its writes coalesce
    as for local publishes.
    """

    _log = Logger()

    def __init__(
        self,
        clock: IReactorTime,
        prepare: Prepare,
        connect: Callable[[Any], Any],
        address: BrokerAddress,
        historySize: int = 50,
        historyBytes: int = 1024 * 1024,
        queueSize: int = 1000,
        delivered: Callable[[int, int], None] = lambda size, count: None,
        drainTimeout: float = 10.0,
        pageSize: int = 100,
        presenceInterval: float = 0.25,
        crowdLimit: int = 1000,
        logSize: int = 1000,
        ttl: float = 86400.0,
    ) -> None:
        """
        @param connect: makes the client endpoint for a plain address
            (C{lambda address: TCP4ClientEndpoint(reactor, ...)}): for
            C{address}, or with Sentinel for each sentinel and for the
            master they name.
        @param queueSize: publishes kept while Redis is unreachable; the
            oldest are dropped beyond it.
        @param drainTimeout: on stop, how long to wait for local members to
            leave (their leave events still go out) before leaving Redis.
        @param pageSize: members per page; presence lists at most this many.
        @param presenceInterval: seconds over which a room's presence
            changes on this node are gathered into one event.
        @param crowdLimit: rooms above this many members get presence
            events without names.
        @param logSize: events each room keeps for clients that come back.
        @param ttl: seconds a room's state outlives its last publish or join.
        """
        self._clock = clock
        self._prepare = prepare
        self._connect = connect
        self.address = address
        self._keys = Keys(address.prefix, address.db)
        self._historySize = historySize
        self._historyBytes = historyBytes
        self._delivered = delivered
        self._drainTimeout = drainTimeout
        self._pageSize = pageSize
        self._presenceInterval = presenceInterval
        self._crowdLimit = crowdLimit
        self._logSize = logSize
        self._ttlMs = int(ttl * 1000)
        self.node = uuid.uuid4().hex[:12]
        self._pingChannel = self._keys.pingChannel(self.node).encode("utf-8")
        self._controlChannel = self._keys.controlChannel.encode("utf-8")
        self._control: Callable[[Mapping[str, Any]], int] = lambda message: 0
        # Joins that came before the first connection attempt settled: they
        # wait, so a fresh process never serves a room on its own while
        # Redis is there to be reached.
        self._early: list[Callable[[], None]] | None = []
        self._fieldCounter = 0
        self._rooms: dict[str, NodeRoom] = {}
        self._presence: dict[str, PresenceChanges] = {}
        self._outbox: dict[str, list[_Outgoing]] = {}
        self._flush: IDelayedCall | None = None
        self._queue: deque[tuple[str, _Outgoing]] = deque(maxlen=queueSize)
        self.droppedWhileDown = 0
        self._state = DISCONNECTED
        self._syncing = False
        self._generation = 0
        self._announcedDown = False
        self._lastPing = 0.0
        self._pingsMissed = 0
        self._idle: list[Deferred[None]] = []
        # Leaves Redis has not confirmed yet: their announcements follow.
        self._departing: set[Deferred[bool]] = set()
        self._commands: RedisLink | None = None
        self._subscriber: RedisLink | None = None
        self._watch: SentinelWatch | None = None
        self._reapAfter = 0.0
        self._heartbeat: LoopingCall | None = None

    # -- state --------------------------------------------------------------

    def brokerState(self) -> str:
        """
        C{"connected"} while rooms span nodes through Redis and this node's
        subscription is known to deliver (its own ping came back within
        L{PING_GRACE} heartbeats), else C{"disconnected"} (rooms work on
        this node alone meanwhile).
        """
        if self._state == CONNECTED and self._pingsMissed < PING_GRACE:
            return CONNECTED
        return DISCONNECTED

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
        from txredisapi import RedisProtocol

        address, master = self.address, bool(self.address.sentinels)
        if master:
            sentinels = [(str(address.at(h, p)), self._connect(address.at(h, p)))
                         for h, p in address.sentinels]
            endpoint = SentinelEndpoint(self._clock, sentinels, address.master,
                                        lambda h, p: self._connect(address.at(h, p)))
            self._watch = SentinelWatch(self._clock, sentinels, address.master,
                                        self._masterMoved)
        else:
            endpoint = self._connect(address)
        db = address.db
        # Bytes in and out (charset=None): frames go from Redis to members as
        # they came, never decoded and encoded again.
        self._commands = RedisLink(
            self._clock, endpoint,
            lambda: RedisProtocol(charset=None, dbid=db, convertNumbers=False, replyTimeout=10),
            lambda p: self._linkUp(), self._linkDown, requireMaster=master)
        self._subscriber = RedisLink(
            self._clock, endpoint, lambda: subscriber(self._received),
            lambda p: self._linkUp(), self._linkDown, requireMaster=master)
        self._commands.start()
        self._subscriber.start()
        if self._watch is not None:
            self._watch.start()
        self._heartbeat = LoopingCall(self._beat)
        self._heartbeat.clock = self._clock
        self._heartbeat.start(self.address.heartbeat, now=False)

    def stopService(self) -> Deferred[None]:
        super().stopService()
        # The heartbeat goes on while members leave, so other nodes do not
        # reap them as lost in the meantime.
        idle: Deferred[None] = Deferred()
        if self._rooms:
            self._idle.append(idle)
        else:
            idle.callback(None)
        return atMost(self._clock, self._drainTimeout, idle).addCallback(lambda _: self._goodbye())

    def _goodbye(self) -> Deferred[Any]:
        """
        Leave Redis: send what waits for the end of the turn, remove this
        node's members (if any are still here) and its liveness key, wait
        for Redis to confirm (at most the reply timeout), then close both
        connections.
        """
        if self._heartbeat is not None and self._heartbeat.running:
            self._heartbeat.stop()
        for room in list(self._presence):
            self._announceNow(room)
        self._flushOutbox()
        commands = self._cmd()
        self._state = DISCONNECTED
        sent: list[Deferred[Any]] = []
        if commands is not None:
            for room, state in self._rooms.items():
                for member, f in state.fields.items():
                    sent.append(self._depart(commands, room, f, _user(state.infos[member], f)))
            sent.append(self._command(commands, "ZREM", self._keys.nodes, self.node))
            sent.append(self._command(commands, "DEL", self._keys.nodeRooms(self.node)))

        def close(_: Any) -> Deferred[Any]:
            links = [link.stop() for link in (self._commands, self._subscriber, self._watch)
                     if link is not None]
            return DeferredList(links, consumeErrors=True)

        return DeferredList(sent, consumeErrors=True).addCallback(close)

    # -- connection state ---------------------------------------------------

    def _cmd(self) -> Any:
        return self._commands.protocol if self._commands is not None else None

    def _sub(self) -> Any:
        return self._subscriber.protocol if self._subscriber is not None else None

    def _connected(self) -> Any:
        """
        The command connection while the broker is connected, else C{None}.
        """
        return self._cmd() if self._state == CONNECTED else None

    def _linkDown(self, why: str) -> None:
        self._generation += 1
        self._syncing = False
        for state in self._rooms.values():
            state.subscribed = False
            waiting, state.waiting = state.waiting, []
            for d in waiting:
                d.errback(ConnectionError(why))
        wasConnected = self._state == CONNECTED
        if wasConnected:
            # What waited for the end of this turn goes to the outage queue.
            for room, items in self._outbox.items():
                for item in items:
                    self._enqueue(room, item.unanswered())
            self._outbox.clear()
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
        self._settled()

    def _settled(self) -> None:
        """
        The first connection attempt is over: let the joins it held go.
        """
        early, self._early = self._early, None
        for join in early or ():
            join()

    def _masterMoved(self, host: str, port: int) -> None:
        """
        The sentinels moved the master (a failover): follow it now, rather
        than at the next failed command.
        """
        self._log.info("the sentinels moved master {master} to {host}:{port}; following",
                       master=self.address.master, host=host, port=port)
        for link in (self._commands, self._subscriber):
            if link is not None:
                link.follow(host, port)

    def _linkUp(self) -> None:
        if self._cmd() is None or self._sub() is None or self._syncing:
            return
        if self._state == CONNECTED:
            return
        self._syncing = True
        generation = self._generation
        self._subscribeTo([self._pingChannel.decode("utf-8"),
                           self._controlChannel.decode("utf-8")]).addCallbacks(
            lambda _: self._resync(generation, 0),
            lambda f: self._commandFailed(f))

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
            self._dropSubscriber()
            return
        if unsubscribed:
            waits = self._subscribeRooms(unsubscribed)
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
            room, item = self._queue.popleft()
            self._outbox.setdefault(room, []).append(item)
        self._syncing = False
        self._state = CONNECTED
        self._lastPing, self._pingsMissed = self._clock.seconds(), 0
        # The other nodes' heartbeats lapsed too if they were cut off with
        # this one (a failover, a Redis that stalled): give them as long as
        # a heartbeat's expiry to come back before reaping them as lost.
        self._reapAfter = self._clock.seconds() + self._ttlMillis() / 1000
        self._flushOutbox(replayed=True)
        where = str(self.address)
        if self.address.sentinels and commands.transport is not None:
            peer = commands.transport.getPeer()
            where += f" (master {peer.host}:{peer.port})"
        self._log.info(
            "connected to Redis at {address} as node {node}: {rooms} rooms, "
            "{queued} queued publishes replayed, {dropped} dropped",
            address=where, node=self.node, rooms=len(self._rooms),
            queued=queued, dropped=self.droppedWhileDown)
        self.droppedWhileDown = 0
        self._settled()

    def _dropSubscriber(self) -> None:
        subscriber = self._sub()
        if subscriber is not None and subscriber.transport is not None:
            subscriber.transport.abortConnection()

    def _register(self, commands: Any, room: str, state: NodeRoom, catchUp: bool) -> None:
        """
        Put this node's members of C{room} back into Redis; with C{catchUp},
        also deliver the recorded events this node missed while it was cut
        off (live events wait meanwhile, so the order holds).
        """
        args: list[Any] = [self.node, state.lastSeq, room]
        for member, info in state.infos.items():
            f = state.fields[member]
            args += [f, _user(info, f), encodeJSON(info)]
        since = state.redisSeq
        if catchUp:
            state.beginCatchUp()
        d = self._eval(commands, scripts.RESYNC,
                       [self._keys.members(room), self._keys.seq(room), self._keys.log(room),
                        self._keys.nodeRooms(self.node), self._keys.users(room),
                        self._keys.userInfo(room), self._keys.epoch(room)],
                       [*args[:3], newEpoch(), *args[3:]])

        def registered(reply: list[Any]) -> None:
            events, epoch = reply
            if self._rooms.get(room) is not state:
                return
            state.epoch = epoch.decode("ascii")
            if not catchUp:
                return
            missed = []
            for body in events:
                seq = int(json.loads(body).get("seq", 0))
                if seq > since:
                    missed.append((body, False, seq))
            state.endCatchUp(missed)

        def failed(failure: Any) -> None:
            if catchUp:
                state.endCatchUp([])
            self._commandFailed(failure)

        d.addCallbacks(registered, failed)

    def _ttlMillis(self) -> int:
        return int(self.address.heartbeat * 3 * 1000)

    def _beat(self) -> None:
        """
        Every heartbeat: refresh this node's expiry, reap dead nodes, and
        ping this node's own channel, so a subscription that stopped
        delivering (a half-open connection, a stopped Redis) is noticed.
        """
        commands = self._connected()
        if commands is None:
            return
        self._checkPing()
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
        self._command(commands, "PUBLISH", self._pingChannel, b"%f" % self._clock.seconds())
        if self._clock.seconds() >= self._reapAfter:
            self._reap(commands)

    def _checkPing(self) -> None:
        if self._clock.seconds() - self._lastPing <= self.address.heartbeat * 1.5:
            self._pingsMissed = 0
            return
        self._pingsMissed += 1
        if self._pingsMissed == PING_GRACE:
            self._log.warn(
                "Redis at {address} has not delivered this node's own ping for {count} "
                "heartbeats; reporting the broker disconnected and reconnecting the "
                "subscription", address=str(self.address), count=self._pingsMissed)
            self._dropSubscriber()

    def _reap(self, commands: Any) -> None:
        """
        Remove the members of nodes whose heartbeat expired (this node does
        it for the dead nodes its script claims) and announce them as gone.
        """
        d = self._eval(commands, scripts.REAP, [self._keys.nodes], [self._keys.prefix, 10])

        def reaped(flat: list[Any]) -> None:
            for i in range(0, len(flat) - 3, 4):
                room, f = flat[i].decode("utf-8"), flat[i + 1].decode("utf-8")
                self._log.info("member {field} of room {room} removed: its node stopped "
                               "sending heartbeats", field=f, room=room)
                if int(flat[i + 3]):
                    self.announce(room, "left", {**json.loads(flat[i + 2]), "reason": "node lost"})

        d.addCallback(reaped).addErrback(self._commandFailed)

    def _eval(self, commands: Any, script: str, keys: list[str], args: list[Any]) -> Deferred[Any]:
        try:
            return commands.eval(script, keys,
                                 [a if isinstance(a, bytes) else str(a) for a in args])
        except Exception as e:  # txredisapi raises at once when not connected
            return fail(e)

    def _command(self, commands: Any, *args: Any) -> Deferred[Any]:
        try:
            d = commands.execute_command(*args)
        except Exception as e:
            return fail(e)
        return d.addErrback(self._commandFailed)

    def _commandFailed(self, failure: Any) -> None:
        # A command lost with its connection: the outage itself is logged
        # once by _linkDown; anything else is worth a line.
        from txredisapi import ConnectionError as RedisConnectionError
        from txredisapi import TimeoutError as RedisTimeoutError

        if failure.check(RedisConnectionError, ConnectionError, RedisTimeoutError):
            return None
        self._log.failure("Redis command failed", failure)
        return None

    # -- subscriptions ------------------------------------------------------

    def _subscribe(self, room: str, state: NodeRoom) -> Deferred[None]:
        """
        A L{Deferred} that fires once this node's subscription to C{room} is
        confirmed.
        """
        if state.subscribed:
            return succeed(None)
        d: Deferred[None] = Deferred()
        state.waiting.append(d)
        if len(state.waiting) == 1:
            self._askToSubscribe([(room, state)], self._keys.channel(room))
        return d

    def _subscribeRooms(self, rooms: list[str]) -> list[Deferred[None]]:
        """
        Like L{_subscribe} for each of C{rooms}, with the channels not asked
        for yet sent in SUBSCRIBE commands of at most L{SUBSCRIBE_BATCH}
        channels (a resync of many rooms is a few commands, not one each).
        """
        waits: list[Deferred[None]] = []
        asking: list[tuple[str, NodeRoom]] = []
        for room in rooms:
            state = self._rooms[room]
            if state.subscribed:
                waits.append(succeed(None))
                continue
            d: Deferred[None] = Deferred()
            state.waiting.append(d)
            waits.append(d)
            if len(state.waiting) == 1:
                asking.append((room, state))
        for i in range(0, len(asking), SUBSCRIBE_BATCH):
            batch = asking[i:i + SUBSCRIBE_BATCH]
            self._askToSubscribe(batch, [self._keys.channel(room) for room, _ in batch])
        return waits

    def _askToSubscribe(self, rooms: list[tuple[str, NodeRoom]], channels: str | list[str]) -> None:
        """
        Send one SUBSCRIBE for C{rooms}; once Redis confirms it, each room
        still here counts as subscribed and its waiters fire.
        """
        generation = self._generation

        def confirmed(_: Any) -> None:
            if generation != self._generation:
                return
            for room, state in rooms:
                if self._rooms.get(room) is state:
                    state.subscribed = True
                    waiting, state.waiting = state.waiting, []
                    for w in waiting:
                        w.callback(None)

        def failed(failure: Any) -> None:
            for _, state in rooms:
                waiting, state.waiting = state.waiting, []
                for w in waiting:
                    w.errback(failure)

        self._subscribeTo(channels).addCallbacks(confirmed, failed)

    def _subscribeTo(self, channels: str | list[str]) -> Deferred[Any]:
        try:
            return self._sub().subscribe(channels)
        except Exception as e:
            return fail(Failure(e))

    def _unsubscribe(self, room: str) -> None:
        subscriber = self._sub()
        if subscriber is not None:
            try:
                subscriber.unsubscribe(self._keys.channel(room)).addErrback(lambda f: None)
            except Exception:
                pass

    def _received(self, channel: bytes, message: bytes) -> None:
        try:
            self._dispatch(channel, message)
        except Exception:
            self._log.failure("bad message on {channel}", channel=channel)

    def _dispatch(self, channel: bytes, message: bytes) -> None:
        if channel == self._pingChannel:
            self._lastPing, self._pingsMissed = self._clock.seconds(), 0
            return
        if channel == self._controlChannel:
            self._control(json.loads(message))
            return
        room = self._keys.roomOf(channel.decode("utf-8"))
        state = self._rooms.get(room) if room is not None else None
        if state is None:
            return
        decoded = decodeChannelMessage(message)
        # This node's own publishes from an outage were delivered here when
        # they were made.
        own = decoded.replayed and decoded.origin == self._nodeBytes
        if isinstance(decoded, EventBatch):
            for seq, recorded, body in decoded.events():
                state.received(seq, recorded, body, not own)
        elif isinstance(decoded, BinaryMessage) and not own:
            state.fanOut(decoded.data, True, None)

    @property
    def _nodeBytes(self) -> bytes:
        return self.node.encode("ascii")

    # -- IRoomHub -----------------------------------------------------------

    def _newField(self) -> str:
        self._fieldCounter += 1
        return f"{self.node}/{self._fieldCounter}"

    def join(self, room: str, member: IRoomMember, info: Mapping[str, Any],
             resume: Resume | None = None) -> Deferred[RoomSnapshot]:
        if self._early is not None and self.running:
            held: Deferred[RoomSnapshot] = Deferred()
            self._early.append(lambda: self.join(room, member, info, resume).chainDeferred(held))
            return held
        state = self._rooms.get(room)
        if state is None:
            state = self._rooms[room] = NodeRoom(
                self._prepare, History(self._historySize, self._historyBytes), self._delivered)
        f = self._newField()
        state.add(member, info, f)
        user = _user(info, f)
        result: Deferred[RoomSnapshot] = Deferred()
        commands = self._connected()
        if commands is None:
            state.activate(member, state.localSnapshot(self._pageSize, resume), result)
            return result
        generation = self._generation

        def snapshot(_: Any) -> Deferred[Any]:
            if generation != self._generation:
                raise ConnectionError("Redis connection changed")
            return self._eval(
                commands, scripts.JOIN,
                [self._keys.members(room), self._keys.seq(room), self._keys.history(room),
                 self._keys.nodeRooms(self.node), self._keys.historyBytes(room),
                 self._keys.users(room), self._keys.userInfo(room), self._keys.log(room),
                 self._keys.logFirst(room), self._keys.logBytes(room), self._keys.epoch(room),
                 self._keys.rooms],
                [f, encodeJSON(info), room, self._pageSize, user, newEpoch(), self._ttlMs,
                 "" if resume is None else resume.seq, "" if resume is None else resume.epoch])

        def taken(reply: list[Any]) -> None:
            seq, frames, count, users, first, cursor, infos, epoch, resumed, missed = reply
            state.adoptSnapshot(int(seq), frames)
            state.epoch = epoch.decode("ascii")
            state.lastCount = count = int(count)
            snap = RoomSnapshot(infos, _cursor(cursor), count, int(users), frames=frames,
                                seq=int(seq), first=bool(int(first)), epoch=state.epoch,
                                resumed=None if int(resumed) < 0 else bool(int(resumed)),
                                missed=missed)
            state.activate(member, snap, result)

        def fallback(failure: Any) -> None:
            # Redis went away mid-join: serve the joiner from this node.
            self._commandFailed(failure)
            state.activate(member, state.localSnapshot(self._pageSize, resume), result)

        self._subscribe(room, state).addCallback(snapshot).addCallbacks(taken, fallback)
        return result

    def update(self, room: str, member: IRoomMember, info: Mapping[str, Any]) -> None:
        state = self._rooms.get(room)
        if state is None or not state.update(member, info):
            return
        commands = self._connected()
        if commands is not None:
            f = state.fields[member]
            self._eval(commands, scripts.UPDATE, [self._keys.members(room), self._keys.userInfo(room)],
                       [f, _user(info, f), encodeJSON(info)]).addErrback(self._commandFailed)

    def leave(self, room: str, member: IRoomMember) -> Deferred[bool]:
        state = self._rooms.get(room)
        info = state.infos.get(member) if state is not None else None
        f = state.remove(member) if state is not None else None
        if f is None:
            return succeed(False)
        user = _user(info, f)
        commands = self._connected()
        if commands is not None:
            last = self._depart(commands, room, f, user)
            self._departing.add(last)

            def departed(result: Any, d: Deferred[bool] = last) -> Any:
                self._departing.discard(d)
                if not self._rooms and self._idle:
                    # Next turn: once the leaver's announcement is in.
                    self._clock.callLater(0, self._becameIdle)
                return result

            last.addBoth(departed)
        else:
            # Cut off: this node's view is all there is.
            last = succeed(not any(_user(i, state.fields[m]) == user for m, i in state.infos.items()))
        if state.isEmpty():
            del self._rooms[room]
            self._unsubscribe(room)
            if commands is not None:
                self._command(commands, "SREM", self._keys.nodeRooms(self.node), room)
            if not self._rooms and self._idle:
                # Next turn: the leaver still announces its leave.
                self._clock.callLater(0, self._becameIdle)
        return last

    def _depart(self, commands: Any, room: str, field: str, user: str) -> Deferred[bool]:
        """
        Remove one connection from C{room} in Redis; fires with whether it
        was its user's last there.
        """
        d = self._eval(commands, scripts.LEAVE,
                       [self._keys.members(room), self._keys.users(room), self._keys.userInfo(room)],
                       [field, user])

        def failed(failure: Any) -> bool:
            self._commandFailed(failure)
            return True

        return d.addCallbacks(lambda reply: bool(int(reply)), failed)

    def _becameIdle(self) -> None:
        if not self._rooms and not self._departing:
            idle, self._idle = self._idle, []
            for d in idle:
                if not d.called:
                    d.callback(None)

    def members(self, room: str) -> list[dict[str, Any]]:
        state = self._rooms.get(room)
        return state.members() if state is not None else []

    def memberPage(self, room: str, after: str | None = None) -> Deferred[MemberPage]:
        commands = self._connected()
        if commands is None:
            state = self._rooms.get(room)
            if state is None:
                return succeed(MemberPage((), None, 0, 0))
            try:
                offset = min(max(0, int(after or 0)), len(state.infos))
            except ValueError:
                offset = 0
            return succeed(state.localPage(offset, self._pageSize))
        scan, _, skip = (after or "").partition(":")
        if not (scan.isdigit() and skip.isdigit()):
            scan, skip = "0", "0"
        return self._page(commands, room, scan, skip).addCallback(lambda reply: reply[0])

    def _page(self, commands: Any, room: str, scan: str, skip: str) -> Deferred[Any]:
        """
        A page of C{room}'s members from Redis, with the room's seq and epoch.
        """
        d = self._eval(commands, scripts.MEMBERS,
                       [self._keys.members(room), self._keys.users(room), self._keys.userInfo(room),
                        self._keys.seq(room), self._keys.epoch(room)],
                       [scan, skip, self._pageSize])

        def page(reply: list[Any]) -> tuple[MemberPage, int, str]:
            count, users, cursor, infos, seq, epoch = reply
            return (MemberPage(infos, _cursor(cursor), int(count), int(users)), int(seq),
                    epoch.decode("ascii") if isinstance(epoch, bytes) else str(epoch))

        return d.addCallback(page)

    def announce(self, room: str, change: str, info: Mapping[str, Any]) -> None:
        changes = self._presence.get(room)
        if changes is None:
            changes = self._presence[room] = PresenceChanges()
            state = self._rooms.get(room)
            members = max(len(state.infos), state.lastCount) if state is not None else 0
            changes.timer = self._clock.callLater(
                presenceDelay(self._presenceInterval, members), self._announceNow, room)
        changes.add(change, info)

    def _announceNow(self, room: str) -> None:
        changes = self._presence.pop(room, None)
        if changes is None:
            return
        if changes.timer is not None and changes.timer.active():
            changes.timer.cancel()
        if not changes:
            return
        state = self._rooms.get(room)
        if self._connected() is None:
            if state is None or state.isEmpty():
                return
            count = len(state.infos)
            event = changes.event(self._pageSize, count > self._crowdLimit)
            event.update(count=count, users=len(state.localUsers()))
            self.publish(room, event)
            return
        # The count comes from Redis, so whether the room is crowded is this
        # node's best guess: its own members, or what it was last told.
        crowded = state is not None and len(state.infos) > self._crowdLimit
        event = changes.event(self._pageSize, crowded or self._lastCount(room) > self._crowdLimit)
        time = isoUTC(self._clock.seconds())
        self._publishEvent(room, encodeEvent(event, room, time), COUNTED, time)

    def _lastCount(self, room: str) -> int:
        state = self._rooms.get(room)
        return state.lastCount if state is not None else 0

    def publish(self, room: str, event: Mapping[str, Any], record: bool = False,
                idempotencyKey: str | None = None) -> Deferred[Published]:
        # Unlike the in-process hub, a room without local members still
        # publishes: members on other nodes (the last local member's leave
        # is the common case) must hear it.
        time = isoUTC(self._clock.seconds())
        return self._publishEvent(room, encodeEvent(event, room, time), RECORD if record else 0,
                                  time, idempotencyKey)

    def _publishEvent(self, room: str, body: bytes, flags: int, time: str,
                      key: str | None = None) -> Deferred[Published]:
        if self._connected() is not None:
            result: Deferred[Published] = Deferred()
            self._send(room, _Outgoing("e", body, flags, time, key or "", result))
            return result
        self._enqueue(room, _Outgoing("e", body, flags, time, key or "", None))
        state = self._rooms.get(room)
        if state is None:
            return succeed(Published(0, "", time))
        if flags & COUNTED and b'"count":' not in body:
            body = withFields(body, b'"count":%d,"users":%d'
                              % (len(state.infos), len(state.localUsers())))
        return succeed(Published(state.publishLocally(body, bool(flags & RECORD)), state.epoch, time))

    def publishBinary(self, room: str, data: bytes) -> None:
        if self._connected() is not None:
            self._send(room, _Outgoing("b", data, 0, "", "", None))
            return
        self._enqueue(room, _Outgoing("b", data, 0, "", "", None))
        state = self._rooms.get(room)
        if state is not None:
            state.fanOut(data, True, None)

    def _send(self, room: str, item: "_Outgoing") -> None:
        """
        Queue one publish for the end of this reactor turn.
        """
        self._outbox.setdefault(room, []).append(item)
        if self._flush is None:
            self._flush = self._clock.callLater(0, self._flushOutbox)

    def _flushOutbox(self, replayed: bool = False) -> None:
        """
        Send each room's publishes of this turn, in order: consecutive
        events as one script call, binary messages between them as they are.
        """
        if self._flush is not None and self._flush.active():
            self._flush.cancel()
        self._flush = None
        outbox, self._outbox = self._outbox, {}
        commands = self._connected()
        if commands is None:
            for room, items in outbox.items():
                for item in items:
                    self._enqueue(room, item.unanswered())
            return
        for room, items in outbox.items():
            events: list[_Outgoing] = []
            for item in items:
                if item.kind == "e":
                    events.append(item)
                    continue
                self._publishEvents(commands, room, events, replayed)
                events = []
                self._command(commands, "PUBLISH", self._keys.channel(room),
                              encodeBinaryMessage(self.node, replayed, item.payload))
            self._publishEvents(commands, room, events, replayed)

    def _publishEvents(self, commands: Any, room: str, events: list["_Outgoing"],
                       replayed: bool) -> None:
        if not events:
            return
        state = self._rooms.get(room)
        floor = state.lastSeq if state is not None else 0
        flags = "".join(str(e.flags) for e in events)
        args: list[Any] = [floor, self.node, int(replayed), self._historySize, self._historyBytes,
                           flags, newEpoch(), self._logSize, 4 * self._historyBytes, self._ttlMs,
                           room, self._keys.idempotency(room)]
        for e in events:
            args += [e.key, e.time, e.payload]
        d = self._eval(
            commands, scripts.PUBLISH,
            [self._keys.seq(room), self._keys.history(room), self._keys.channel(room),
             self._keys.historyBytes(room), self._keys.members(room), self._keys.users(room),
             self._keys.log(room), self._keys.logFirst(room), self._keys.logBytes(room),
             self._keys.epoch(room), self._keys.rooms],
            args)

        def published(reply: list[Any]) -> None:
            epoch = reply[0].decode("ascii")
            if state is not None and self._rooms.get(room) is state:
                state.epoch = epoch
            for e, result in zip(events, reply[1:]):
                if e.result is None:
                    continue
                if isinstance(result, bytes):
                    seq, first, time = result.decode("ascii").split(" ", 2)
                    e.result.callback(Published(int(seq), first, time, duplicate=True))
                else:
                    e.result.callback(Published(int(result), epoch, e.time))

        def failed(failure: Any) -> None:
            self._commandFailed(failure)
            for e in events:
                if e.result is not None and not e.result.called:
                    e.result.errback(failure)

        d.addCallbacks(published, failed)

    def _enqueue(self, room: str, item: "_Outgoing") -> None:
        if len(self._queue) == self._queue.maxlen:
            self.droppedWhileDown += 1
        self._queue.append((room, item))

    # -- IRoomAdmin ---------------------------------------------------------

    def _required(self) -> Any:
        commands = self._connected()
        if commands is None:
            raise ConnectionError("the broker is not connected")
        return commands

    def roomList(self, prefix: str = "", after: str | None = None,
                 limit: int = 100) -> Deferred[tuple[list[dict[str, Any]], str | None]]:
        try:
            commands = self._required()
        except ConnectionError as e:
            return fail(e)
        low = b"(" + after.encode("utf-8") if after is not None else b"[" + prefix.encode("utf-8")
        high = b"[" + prefix.encode("utf-8") + b"\xff" if prefix else b"+"
        d = self._eval(commands, scripts.ROOMS, [self._keys.rooms],
                       [self._keys.prefix, low, high, limit + 1])

        def listed(flat: list[Any]) -> tuple[list[dict[str, Any]], str | None]:
            rooms = [{"room": flat[i].decode("utf-8"), "count": int(flat[i + 1]),
                      "users": int(flat[i + 2]), "seq": int(flat[i + 3]),
                      "epoch": flat[i + 4].decode("ascii")}
                     for i in range(0, len(flat) - 4, 5)]
            # Rooms whose keys expired are dropped from the listing as it is
            # read, so a page may hold fewer than it could.
            if len(rooms) > limit:
                rooms = rooms[:limit]
                return rooms, rooms[-1]["room"]
            return rooms, None

        return d.addCallback(listed)

    def roomInfo(self, room: str) -> Deferred[dict[str, Any] | None]:
        try:
            commands = self._required()
        except ConnectionError as e:
            return fail(e)

        def info(reply: tuple[MemberPage, int, str]) -> dict[str, Any] | None:
            page, seq, epoch = reply
            if not page.count and not seq and not epoch:
                return None
            return {"room": room, "count": page.count, "users": page.users, "seq": seq,
                    "epoch": epoch, "members": page.members, "next": page.next}

        return self._page(commands, room, "0", "0").addCallback(info)

    def history(self, room: str, since: int = 0, limit: int = 100) -> Deferred[dict[str, Any] | None]:
        try:
            commands = self._required()
        except ConnectionError as e:
            return fail(e)
        d = self._eval(commands, scripts.HISTORY,
                       [self._keys.log(room), self._keys.logFirst(room), self._keys.seq(room),
                        self._keys.epoch(room)], [since, limit])

        def events(reply: list[Any]) -> dict[str, Any] | None:
            epoch, seq, frames = reply
            if not epoch:
                return None
            return {"room": room, "epoch": epoch.decode("ascii"), "seq": int(seq), "events": frames}

        return d.addCallback(events)

    def control(self, message: Mapping[str, Any]) -> Deferred[int]:
        try:
            commands = self._required()
        except ConnectionError:
            # Cut off, the message reaches this process only.
            self._control(message)
            return succeed(1)
        d = commands.execute_command("PUBLISH", self._controlChannel, encodeJSON(message))
        return d.addCallback(int)

    def onControl(self, handle: Callable[[Mapping[str, Any]], int]) -> None:
        self._control = handle

    def nodes(self) -> Deferred[list[str]]:
        try:
            commands = self._required()
        except ConnectionError:
            return succeed([self.node])
        d = commands.execute_command("ZRANGE", self._keys.nodes, 0, -1)
        return d.addCallback(lambda names: [n.decode("ascii") for n in names])


@dataclass(slots=True)
class _Outgoing:
    """
    One publish waiting for the end of the turn (or for Redis to come
    back): an event (C{kind} C{"e"}, with its flags, time and idempotency
    key) or a binary message (C{"b"}), and who waits for its result.
    """

    kind: str
    payload: bytes
    flags: int
    time: str
    key: str
    result: Deferred[Published] | None

    def unanswered(self) -> "_Outgoing":
        """
        This publish, for the outage queue: whoever waited for its result
        gets the local one now.
        """
        if self.result is not None and not self.result.called:
            self.result.callback(Published(0, "", self.time))
        return _Outgoing(self.kind, self.payload, self.flags, self.time, self.key, None)


def _cursor(cursor: bytes | str) -> str | None:
    """
    A page script's cursor as a page's C{next}: C{None} after the last.
    """
    text = cursor.decode("ascii") if isinstance(cursor, bytes) else str(cursor)
    return text or None


def _user(info: Mapping[str, Any] | None, field: str) -> str:
    """
    The user a member's connection belongs to: its presence C{id}, or the
    connection itself.
    """
    user = info.get("id") if info else None
    return str(user) if user else field
