"""
Unit tests of the Redis room hub's parts that need no Redis: the broker URL,
the key names, the reconnecting link and the hub's local fallback, all on a
L{task.Clock}.
"""

from __future__ import annotations

import json

import pytest
from twisted.internet.defer import Deferred, fail
from twisted.internet.task import Clock
from zope.interface.verify import verifyObject

from wsservice.interfaces import IRoomHub
from wsservice.rooms.redis.hub import RedisRoomHub
from wsservice.rooms.redis.wire import BrokerAddress, Keys
from wsservice.rooms.redis import scripts
from wsservice.rooms.redis.link import RedisLink


class Member:
    """
    A room member that keeps what it is given.
    """

    def __init__(self) -> None:
        self.got: list[dict] = []

    def deliver(self, message) -> None:
        self.got.append(json.loads(message))


class DownEndpoint:
    """
    A client endpoint whose every connection attempt fails.
    """

    def __init__(self) -> None:
        self.attempts = 0

    def connect(self, factory) -> Deferred:
        self.attempts += 1
        return fail(ConnectionRefusedError("refused"))


def test_broker_url_is_parsed_with_defaults_and_options():
    """
    A broker URL gives host, port, database, heartbeat and key prefix, with
    defaults for what it leaves out.
    """
    address = BrokerAddress.fromURL("redis://10.0.0.5:6380/2?heartbeat=0.5&prefix=x:")
    assert (address.host, address.port, address.db, address.heartbeat, address.prefix) == (
        "10.0.0.5", 6380, 2, 0.5, "x:")
    assert BrokerAddress.fromURL("redis://redis") == BrokerAddress(host="redis")
    assert str(address) == "redis://10.0.0.5:6380/2"


@pytest.mark.parametrize("url", ["http://x:1/0", "redis://x:1/zero", "redis://x/0?heartbeat=0"])
def test_bad_broker_urls_are_refused(url):
    """
    Anything but a well-formed redis:// URL is a ValueError saying so.
    """
    with pytest.raises(ValueError):
        BrokerAddress.fromURL(url)


def test_channel_names_map_back_to_rooms_even_with_braces():
    """
    A room's channel name gives back the room, whatever characters it has,
    and channels of another database or prefix are not ours.
    """
    keys = Keys("wss:", 3)
    for room in ("kitchen", "a}b{c", "ünï:code"):
        assert keys.roomOf(keys.channel(room)) == room
    assert keys.roomOf(Keys("wss:", 4).channel("kitchen")) is None
    assert keys.roomOf(Keys("other:", 3).channel("kitchen")) is None


def test_link_backs_off_and_reports_an_outage_once():
    """
    A link to an unreachable Redis retries with growing, capped delays and
    tells its owner once, not on every attempt.
    """
    clock, endpoint, downs = Clock(), DownEndpoint(), []
    link = RedisLink(clock, endpoint, object, lambda p: None, downs.append,
                     initialDelay=0.1, maxDelay=1.0)
    link.start()
    for _ in range(20):
        clock.advance(1.0)
    assert downs == ["refused"]
    # 0.1, 0.2, 0.4, 0.8 then 1.0 apart (minus up to 20% jitter): about 20 in 20 s.
    assert 15 <= endpoint.attempts <= 25
    link.stop()
    before = endpoint.attempts
    clock.advance(10)
    assert endpoint.attempts == before


def makeHub(clock: Clock, queueSize: int = 3) -> RedisRoomHub:
    """
    A hub on C{clock} whose members receive raw payloads.
    """
    return RedisRoomHub(
        clock, lambda payload, isBinary: payload, lambda address: DownEndpoint(),
        BrokerAddress(), historySize=2, queueSize=queueSize,
    )


def test_hub_provides_iroomhub():
    """
    The Redis hub provides every method of L{IRoomHub}.
    """
    assert verifyObject(IRoomHub, makeHub(Clock()))


def test_without_redis_rooms_work_locally_and_queue_a_bounded_backlog():
    """
    With Redis unreachable, joins get a local snapshot, publishes reach
    local members with a local seq and history, and only the newest
    C{queueSize} publishes wait for Redis.
    """
    clock = Clock()
    hub = makeHub(clock)
    hub.startService()
    assert hub.brokerState() == "disconnected"
    alice, bob = Member(), Member()
    snapshots = []
    hub.join("room", alice, {"name": "alice"}).addCallback(snapshots.append)
    for i in range(4):
        hub.publish("room", {"type": "message", "message": f"m{i}"}, record=True)
    hub.join("room", bob, {"name": "bob"}).addCallback(snapshots.append)
    assert [e["seq"] for e in alice.got] == [1, 2, 3, 4]
    assert snapshots[1].seq == 4
    assert [e["message"] for e in snapshots[1].history] == ["m2", "m3"]
    assert snapshots[1].members == [{"name": "alice"}, {"name": "bob"}]
    assert (snapshots[1].count, snapshots[1].next) == (2, None)
    assert hub.members("room") == [{"name": "alice"}, {"name": "bob"}]
    assert hub.queuedCount() == 3 and hub.droppedWhileDown == 1
    hub.leave("room", alice)
    hub.leave("room", bob)
    stopped = []
    hub.stopService().addCallback(stopped.append)
    assert stopped


class FakeCommands:
    """
    A txredisapi command connection whose replies the test gives.
    """

    def __init__(self) -> None:
        self.calls: list[tuple[str, list, list, Deferred]] = []
        self.commands: list[tuple] = []

    def eval(self, script, keys, args) -> Deferred:
        d: Deferred = Deferred()
        self.calls.append((script, keys, args, d))
        return d

    def execute_command(self, *args) -> Deferred:
        self.commands.append(args)
        return Deferred()


class FakeSubscriber:
    """
    A txredisapi subscriber connection whose confirmations the test gives.
    """

    def __init__(self) -> None:
        self.subscribing: list[tuple[str, Deferred]] = []
        self.unsubscribed: list[str] = []

    def subscribe(self, channel) -> Deferred:
        d: Deferred = Deferred()
        self.subscribing.append((channel, d))
        return d

    def unsubscribe(self, channel) -> Deferred:
        self.unsubscribed.append(channel)
        return Deferred()


class Link:
    """
    Stands in for a L{RedisLink} that is connected to C{protocol}.
    """

    def __init__(self, protocol) -> None:
        self.protocol = protocol


def event(seq: int, message: str, origin: str = "othernode") -> bytes:
    """
    A recorded event as it arrives on a room's channel.
    """
    body = json.dumps({"type": "message", "message": message, "room": "r", "seq": seq})
    return f"e {seq} 1 {origin} 0\n{body}".encode()


def connectedHub(clock: Clock):
    """
    A hub on fake connections, connected: its ping and control channels
    confirmed.
    """
    commands, subscriber = FakeCommands(), FakeSubscriber()
    hub = makeHub(clock)
    hub._commands, hub._subscriber = Link(commands), Link(subscriber)
    hub._linkUp()
    channels, confirm = subscriber.subscribing.pop(0)
    assert [c.rsplit(":", 1)[-1] for c in channels] == ["ping", "control"]
    confirm.callback(None)
    assert hub.brokerState() == "connected"
    return hub, commands, subscriber


def test_joiner_gets_events_after_its_snapshot_once_and_in_order():
    """
    Live events that race the joiner's snapshot are buffered; those at or
    below the snapshot's seq are dropped, even when they arrive after it.
    """
    clock = Clock()
    hub, commands, subscriber = connectedHub(clock)
    member, snapshots = Member(), []
    hub.join("r", member, {"name": "m"}).addCallback(snapshots.append)
    channel, confirm = subscriber.subscribing[0]
    assert not [c for c in commands.calls if c[0] == scripts.JOIN]  # not before SUBSCRIBE is confirmed
    confirm.callback(["subscribe", channel, 1])
    join = [c for c in commands.calls if c[0] == scripts.JOIN][0]
    hub._received(channel.encode(), event(5, "five"))
    hub._received(channel.encode(), event(6, "six"))
    assert member.got == [] and snapshots == []
    join[3].callback([5, [json.dumps({"message": "five", "seq": 5}).encode()], 1, 1, 1, b"",
                      [b'{"name":"m"}'], b"ep0ch", -1, []])
    assert snapshots[0].seq == 5 and [e["message"] for e in snapshots[0].history] == ["five"]
    assert snapshots[0].members == [{"name": "m"}] and snapshots[0].count == 1
    hub._received(channel.encode(), event(4, "late four"))
    hub._received(channel.encode(), event(7, "seven"))
    assert [e["seq"] for e in member.got] == [6, 7]


def test_node_unsubscribes_when_its_last_member_leaves():
    """
    A node stays subscribed to a room while it has members there and
    unsubscribes when the last one leaves, removing it from Redis presence.
    """
    clock = Clock()
    hub, commands, subscriber = connectedHub(clock)
    first, second = Member(), Member()
    hub.join("r", first, {"name": "a"})
    channel, confirm = subscriber.subscribing[0]
    confirm.callback(["subscribe", channel, 1])
    hub.join("r", second, {"name": "b"})
    assert len(subscriber.subscribing) == 1
    hub.leave("r", first)
    assert subscriber.unsubscribed == []
    hub.leave("r", second)
    assert subscriber.unsubscribed == [channel]
    removals = [c for c in commands.calls if c[0] == scripts.LEAVE]
    assert len(removals) == 2
    assert ("SREM", hub._keys.nodeRooms(hub.node), "r") in commands.commands
