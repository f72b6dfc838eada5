"""
L{RedisRoomHub}: the L{IRoomHub} of rooms that span processes and machines,
with membership, sequence numbers and history kept in Redis and events
fanned out over Redis pub/sub (how, in L{wsservice.rooms.redis}).
"""

from __future__ import annotations

import json
import uuid
from collections import OrderedDict, deque
from typing import Any, Callable, Mapping

from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredList, fail, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from wsservice.interfaces import IBrokerStatus, IRoomCounts, IRoomHub, IRoomMember
from wsservice.rooms.events import History, Prepare, RoomSnapshot, encodeEvent
from wsservice.rooms.redis import scripts
from wsservice.rooms.redis.link import RedisLink
from wsservice.rooms.redis.view import NodeRoom
from wsservice.rooms.redis.wire import (
    BinaryMessage,
    BrokerAddress,
    EventMessage,
    Keys,
    PresenceMessage,
    decodeChannelMessage,
    encodeBinaryMessage,
    encodeInfo,
    pairs,
)
from wsservice.timefmt import isoUTC

CONNECTED = "connected"
DISCONNECTED = "disconnected"


@implementer(IRoomHub, IRoomCounts, IBrokerStatus)
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
        departed: Callable[[Mapping[str, Any]], dict[str, Any]],
        historySize: int = 50,
        historyBytes: int = 1024 * 1024,
        queueSize: int = 1000,
        delivered: Callable[[int, int], None] = lambda size, count: None,
        drainTimeout: float = 10.0,
    ) -> None:
        """
        @param departed: the event to publish for a member whose node
            stopped sending heartbeats, from its presence.
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
        self._keys = Keys(address.prefix, address.db)
        self._historySize = historySize
        self._historyBytes = historyBytes
        self._delivered = delivered
        self._departed = departed
        self._drainTimeout = drainTimeout
        self.node = uuid.uuid4().hex[:12]
        self._fieldCounter = 0
        self._rooms: dict[str, NodeRoom] = {}
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

    def _register(self, commands: Any, room: str, state: NodeRoom, catchUp: bool) -> None:
        """
        Put this node's members of C{room} back into Redis; with C{catchUp},
        also deliver the recorded events this node missed while it was cut
        off (live events wait meanwhile, so the order holds).
        """
        args: list[Any] = [self.node, state.lastSeq, room]
        for member, info in state.infos.items():
            args += [state.fields[member], encodeInfo(info)]
        since = state.redisSeq
        if catchUp:
            state.beginCatchUp()
        d = self._eval(commands, scripts.RESYNC,
                       [self._keys.members(room), self._keys.seq(room), self._keys.channel(room),
                        self._keys.history(room), self._keys.nodeRooms(self.node)],
                       args)

        def registered(reply: list[Any]) -> None:
            if self._rooms.get(room) is not state:
                return
            state.remote = pairs(reply[0])
            if catchUp:
                missed = []
                for body in reply[1]:
                    seq = int(json.loads(body).get("seq", 0))
                    if seq > since:
                        missed.append((body.encode("utf-8"), False, seq))
                state.endCatchUp(missed)

        def failed(failure: Any) -> None:
            if catchUp:
                state.endCatchUp([])
            self._commandFailed(failure)

        d.addCallbacks(registered, failed)

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
            return commands.eval(script, keys, [a if isinstance(a, bytes) else str(a) for a in args])
        except Exception as e:  # txredisapi raises at once when not connected
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

    def _dispatch(self, channel: str, text: str) -> None:
        room = self._keys.roomOf(channel)
        state = self._rooms.get(room) if room is not None else None
        if state is None:
            return
        message = decodeChannelMessage(text)
        if isinstance(message, EventMessage):
            # This node's own publishes from an outage were delivered here
            # when they were made.
            ownReplay = message.replayed and message.origin == self.node
            state.received(message.seq, message.recorded, message.body, not ownReplay)
        elif isinstance(message, BinaryMessage):
            if not (message.replayed and message.origin == self.node):
                state.fanOut(message.data, True, None)
        elif isinstance(message, PresenceMessage):
            if message.node == self.node:
                return
            if message.info is not None:
                state.remote[message.field] = message.info
            else:
                state.remote.pop(message.field, None)

    # -- IRoomHub -----------------------------------------------------------

    def _newField(self) -> str:
        self._fieldCounter += 1
        return f"{self.node}/{self._fieldCounter}"

    def join(self, room: str, member: IRoomMember, info: Mapping[str, Any]) -> Deferred[RoomSnapshot]:
        state = self._rooms.get(room)
        if state is None:
            state = self._rooms[room] = NodeRoom(
                self._prepare, History(self._historySize, self._historyBytes), self._delivered)
            self._vacated.pop(room, None)
        f = self._newField()
        state.add(member, info, f)
        result: Deferred[RoomSnapshot] = Deferred()
        commands = self._cmd()
        if self._state != CONNECTED or commands is None:
            state.activate(member, state.localSnapshot(member), result)
            return result
        generation = self._generation

        def snapshot(_: Any) -> Deferred[Any]:
            if generation != self._generation:
                raise ConnectionError("Redis connection changed")
            return self._eval(
                commands, scripts.JOIN,
                [self._keys.members(room), self._keys.seq(room), self._keys.history(room),
                 self._keys.channel(room), self._keys.nodes, self._keys.nodeRooms(self.node),
                 self._keys.historyBytes(room)],
                [f, encodeInfo(info), room])

        def taken(reply: list[Any]) -> None:
            seq, frames, members = int(reply[0]), [b.encode("utf-8") for b in reply[1]], pairs(reply[2])
            state.adoptSnapshot(seq, frames, members, f"{self.node}/")
            snap = RoomSnapshot(
                frames=frames,
                members=[v for k, v in members.items() if k != f],
                seq=seq,
            )
            state.activate(member, snap, result)

        def fallback(failure: Any) -> None:
            # Redis went away mid-join: serve the joiner from this node.
            self._commandFailed(failure)
            state.activate(member, state.localSnapshot(member), result)

        self._subscribe(room, state).addCallback(snapshot).addCallbacks(taken, fallback)
        return result

    def update(self, room: str, member: IRoomMember, info: Mapping[str, Any]) -> None:
        state = self._rooms.get(room)
        if state is None or not state.update(member, info):
            return
        commands = self._cmd()
        if self._state == CONNECTED and commands is not None:
            self._eval(commands, scripts.PRESENCE,
                       [self._keys.members(room), self._keys.channel(room)],
                       [state.fields[member], encodeInfo(info)]).addErrback(self._commandFailed)

    def leave(self, room: str, member: IRoomMember) -> None:
        state = self._rooms.get(room)
        f = state.remove(member) if state is not None else None
        if f is None:
            return
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
        body = encodeEvent(event, room, isoUTC(self._clock.seconds()))
        commands = self._cmd()
        if self._state == CONNECTED and commands is not None:
            self._publishRemote(commands, room, body, record, replayed=False)
            return
        self._enqueue(("e", room, body, record))
        if state is not None:
            state.publishLocally(body, record)

    def _publishRemote(self, commands: Any, room: str, body: bytes, record: bool,
                       replayed: bool) -> None:
        state = self._rooms.get(room)
        floor = state.lastSeq if state is not None else 0
        self._eval(
            commands, scripts.PUBLISH,
            [self._keys.seq(room), self._keys.history(room), self._keys.channel(room),
             self._keys.historyBytes(room)],
            [body, int(record), self._historySize, floor, self.node, int(replayed),
             self._historyBytes],
        ).addErrback(self._commandFailed)

    def publishBinary(self, room: str, data: bytes) -> None:
        state = self._rooms.get(room)
        commands = self._cmd()
        if self._state == CONNECTED and commands is not None:
            self._publishBinaryRemote(commands, room, data, replayed=False)
            return
        self._enqueue(("b", room, data, False))
        if state is not None:
            state.fanOut(data, True, None)

    def _publishBinaryRemote(self, commands: Any, room: str, data: bytes, replayed: bool) -> None:
        message = encodeBinaryMessage(self.node, replayed, data)
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
        return state.members()
