"""
The parts behind C{--broker redis+sentinel://...} and the batched resync,
without Redis: the URL, the link's master check and failover following,
the sentinel discovery, pub/sub confirmations matched by channel, rooms
re-subscribed in batches, and outage seqs that never repeat.  Everything
runs on a L{task.Clock} over string transports; tests/scale/test_failover.py
runs the real thing.
"""

from __future__ import annotations

import json

import pytest
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python import usage
from twisted.python.failure import Failure

from wsservice.rooms.events import History, RoomSnapshot
from wsservice.rooms.redis import scripts
from wsservice.rooms.redis.hub import RedisRoomHub
from wsservice.rooms.redis.link import (
    SUBSCRIBE_BATCH,
    RedisLink,
    SentinelEndpoint,
    SentinelWatch,
    subscriber,
)
from wsservice.rooms.redis.view import NodeRoom
from wsservice.rooms.redis.wire import BrokerAddress
from wsservice.tap import Options


def bulk(*items: bytes | int | None) -> bytes:
    """
    A RESP array reply of C{items}.
    """
    out = b"*%d\r\n" % len(items)
    for item in items:
        if item is None:
            out += b"$-1\r\n"
        elif isinstance(item, int):
            out += b":%d\r\n" % item
        else:
            out += b"$%d\r\n%s\r\n" % (len(item), item)
    return out


class Endpoint:
    """
    Connects each protocol to a string transport whose peer is
    C{host:port}, or refuses while C{refusing}.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 6379) -> None:
        self.peer = IPv4Address("TCP", host, port)
        self.refusing = False
        self.attempts = 0
        self.protocols: list = []

    def connect(self, factory) -> Deferred:
        self.attempts += 1
        if self.refusing:
            return fail(ConnectionRefusedError("refused"))
        p = factory.buildProtocol(self.peer)
        p.makeConnection(StringTransport(peerAddress=self.peer))
        self.protocols.append(p)
        return succeed(p)


class FactoryOf:
    """
    A protocol factory for L{Endpoint}.
    """

    def __init__(self, make) -> None:
        self.make = make

    def buildProtocol(self, addr):
        p = self.make()
        p.factory = self
        return p


def feed(p, data: bytes) -> None:
    """
    Give C{p} what Redis sent, a byte at a time: txredisapi parses what
    follows a bulk string in the same chunk on a later turn of the global
    reactor, which these tests do not run.
    """
    for i in range(len(data)):
        p.dataReceived(data[i:i + 1])


def lose(p) -> None:
    p.connectionLost(Failure(ConnectionDone()))


# -- the URL ------------------------------------------------------------------


def test_a_sentinel_url_names_the_sentinels_in_order_the_master_and_the_options():
    """
    The sentinels keep their order (it is the order they are asked in),
    a missing port is Sentinel's 26379, and the options are the same as for
    redis:// plus the database.
    """
    address = BrokerAddress.fromURL(
        "redis+sentinel://10.0.0.1:26380,sentinel-b,[::1]:5000/chat?db=2&heartbeat=0.5&prefix=p:")
    assert address.sentinels == (("10.0.0.1", 26380), ("sentinel-b", 26379), ("::1", 5000))
    assert (address.master, address.db, address.heartbeat, address.prefix) == ("chat", 2, 0.5, "p:")
    assert str(address) == "redis+sentinel://10.0.0.1:26380,sentinel-b:26379,[::1]:5000/chat?db=2"
    server = address.at("10.0.0.9", 6380)
    assert (server.host, server.port, server.db, server.sentinels) == ("10.0.0.9", 6380, 2, ())


@pytest.mark.parametrize("url, problem", [
    ("redis+sentinel://a:1", "name the master"),
    ("redis+sentinel://a:1/", "name the master"),
    ("redis+sentinel://a:1/M/extra", "name the master"),
    ("redis+sentinel:///M", "without a host"),
    ("redis+sentinel://a:1,,b:2/M", "without a host"),
    ("redis+sentinel://a:0/M", "port in 'a:0' must be 1-65535"),
    ("redis+sentinel://a:x/M", "port in 'a:x' must be 1-65535"),
    ("redis+sentinel://a:1/M?db=one", "db must be a number"),
    ("redis+sentinel://a:1/M?db=-1", "0 or more"),
    ("redis+sentinel://a:1/M?heartbeat=0", "heartbeat must be in"),
    ("redis+sentinel://a:1/M?timeout=3", "unknown option 'timeout'"),
    ("redis+sentinel://user:pw@a:1/M", "passwords are not supported"),
    ("redis://a:1/M", "the database must be a number"),
    ("rediss://a:1/0", "use redis://"),
])
def test_a_bad_broker_url_is_a_usage_error_that_names_the_problem(url, problem):
    """
    Each way a broker URL can be wrong is refused before anything starts,
    as a usage error of --broker saying what is wrong.
    """
    with pytest.raises(ValueError, match=problem):
        BrokerAddress.fromURL(url)
    with pytest.raises(usage.UsageError, match="--broker: .*" + problem):
        Options().parseOptions(["--broker", url])


# -- pub/sub confirmations ----------------------------------------------------


def test_one_subscribe_of_many_channels_fires_once_all_of_its_own_are_confirmed():
    """
    A SUBSCRIBE of three channels is one command and gets three
    confirmations; they fire its Deferred only, never the next SUBSCRIBE's,
    whose own confirmation fires it.  Messages and other replies still
    reach their places.
    """
    got = []
    p = subscriber(lambda channel, message: got.append((channel, message)))
    p.makeConnection(StringTransport())
    first, second = [], []
    p.subscribe(["c1", "c2", "c3"]).addCallback(first.append)
    p.subscribe("c4").addCallback(second.append)
    assert p.transport.value().startswith(b"*4\r\n$9\r\nSUBSCRIBE\r\n$2\r\nc1\r\n")
    for n, channel in enumerate((b"c1", b"c2"), 1):
        feed(p, bulk(b"subscribe", channel, n))
    assert first == second == []
    feed(p, bulk(b"message", b"c1", b"hello"))
    feed(p, bulk(b"subscribe", b"c3", 3))
    assert first == [None] and second == []
    feed(p, bulk(b"subscribe", b"c4", 4))
    assert second == [None]
    assert got == [(b"c1", b"hello")]


def test_a_lost_subscriber_fails_the_subscribes_still_waiting():
    """
    A connection lost before every confirmation came fails the SUBSCRIBE,
    so nobody takes the channels for subscribed.
    """
    p = subscriber(lambda channel, message: None)
    p.makeConnection(StringTransport())
    failures = []
    p.subscribe(["c1", "c2"]).addErrback(failures.append)
    feed(p, bulk(b"subscribe", b"c1", 1))
    lose(p)
    assert len(failures) == 1
    with pytest.raises(Exception, match="Not connected"):
        p.subscribe("c3")


class FakeSubscriber:
    """
    Records each subscribe call's channels and hands out its Deferred.
    """

    def __init__(self) -> None:
        self.calls: list[tuple[object, Deferred]] = []

    def subscribe(self, channels) -> Deferred:
        d: Deferred = Deferred()
        self.calls.append((channels, d))
        return d

    def unsubscribe(self, channels) -> Deferred:
        return succeed(None)


class FakeCommands:
    def __init__(self) -> None:
        self.scripts: list[str] = []

    def eval(self, script, keys, args) -> Deferred:
        self.scripts.append(script)
        return Deferred()

    def execute_command(self, *args) -> Deferred:
        return Deferred()


class Connected:
    """
    Stands in for a connected L{RedisLink}.
    """

    def __init__(self, protocol) -> None:
        self.protocol = protocol


class Member:
    def __init__(self) -> None:
        self.got: list[dict] = []

    def deliver(self, message) -> None:
        self.got.append(json.loads(message))


def test_a_resync_subscribes_every_room_in_bounded_batches():
    """
    After an outage, a node with 250 rooms re-subscribes them in three
    SUBSCRIBE commands of at most SUBSCRIBE_BATCH channels, and counts as
    connected (registering its members) only once all are confirmed.
    """
    clock = Clock()
    hub = RedisRoomHub(clock, lambda payload, isBinary: payload,
                       lambda address: Endpoint(), BrokerAddress())
    rooms = [f"room{n}" for n in range(250)]
    for room in rooms:
        hub.join(room, Member(), {"name": room})
    commands, pubsub = FakeCommands(), FakeSubscriber()
    hub._commands, hub._subscriber = Connected(commands), Connected(pubsub)
    hub._linkUp()
    ping, confirm = pubsub.calls.pop(0)
    confirm.callback(None)
    sizes = [len(channels) for channels, _ in pubsub.calls]
    assert sizes == [SUBSCRIBE_BATCH, SUBSCRIBE_BATCH, 250 - 2 * SUBSCRIBE_BATCH]
    asked = [c for channels, _ in pubsub.calls for c in channels]
    assert asked == [hub._keys.channel(room) for room in rooms]
    for _, d in pubsub.calls[:2]:
        d.callback(None)
    assert hub.brokerState() == "disconnected" and scripts.RESYNC not in commands.scripts
    pubsub.calls[2][1].callback(None)
    assert hub.brokerState() == "connected"
    assert commands.scripts.count(scripts.RESYNC) == 250


# -- the link: a master only, and following a failover ------------------------


def test_a_link_counts_only_a_master_as_up():
    """
    With requireMaster, a server whose ROLE is not master (the old master,
    now a replica) is left and retried with backoff, the owner told once
    why; the link is up once ROLE says master.
    """
    from txredisapi import RedisProtocol

    clock, endpoint, ups, downs = Clock(), Endpoint(port=6380), [], []
    link = RedisLink(clock, endpoint, lambda: RedisProtocol(charset=None, convertNumbers=False),
                     ups.append, downs.append, requireMaster=True)
    link.start()
    replica = endpoint.protocols[-1]
    assert replica.transport.value() == b"*1\r\n$4\r\nROLE\r\n"
    feed(replica, bulk(b"slave", b"127.0.0.1", 6381, b"connected", 10))
    assert replica.transport.disconnecting
    lose(replica)
    assert downs == ["127.0.0.1:6380 is a slave, not the master"] and ups == []
    clock.advance(0.1)
    master = endpoint.protocols[-1]
    assert master is not replica
    feed(master, b"*3\r\n$6\r\nmaster\r\n:10\r\n*0\r\n")
    assert ups == [master] and link.protocol is master
    assert downs == ["127.0.0.1:6380 is a slave, not the master"]


def test_a_server_that_does_not_answer_its_setup_is_left():
    """
    A server that accepts the connection but never answers ROLE does not
    hold the link: after setupTimeout the attempt counts as failed.
    """
    from txredisapi import RedisProtocol

    clock, endpoint, downs = Clock(), Endpoint(), []
    link = RedisLink(clock, endpoint, lambda: RedisProtocol(charset=None, convertNumbers=False),
                     lambda p: None, downs.append, requireMaster=True, setupTimeout=3)
    link.start()
    clock.advance(3)
    assert endpoint.protocols[0].transport.disconnecting
    lose(endpoint.protocols[0])
    assert downs == ["127.0.0.1:6379 did not answer within 3 s"]


def test_following_a_failover_retries_at_once_or_leaves_the_old_master():
    """
    When the sentinels announce a new master, a link waiting out its
    backoff connects at once, and a link still on another server leaves
    it (saying why), while one already on the new master stays.
    """
    clock, endpoint, downs = Clock(), Endpoint("127.0.0.1", 7000), []
    endpoint.refusing = True
    link = RedisLink(clock, endpoint, lambda: subscriber(lambda c, m: None),
                     lambda p: None, downs.append, maxDelay=5.0)
    link.start()
    for _ in range(6):
        clock.advance(5)
    attempts = endpoint.attempts
    endpoint.refusing = False
    link.follow("127.0.0.1", 7000)
    assert endpoint.attempts == attempts + 1 and link.protocol is not None
    link.follow("127.0.0.1", 7000)
    assert not link.protocol.transport.disconnecting
    link.follow("127.0.0.1", 7001)
    old = link.protocol
    assert old.transport.disconnecting
    lose(old)
    assert downs == ["refused", "the master moved to 127.0.0.1:7001"]


def test_a_watch_passes_on_switch_master_for_its_master_only():
    """
    +switch-master names the master and its old and new address; the
    watch reports the new one, for its own master only.
    """
    moved = []
    watch = SentinelWatch(Clock(), [("s", Endpoint())], "chat", lambda h, p: moved.append((h, p)))
    watch._news(b"+switch-master", b"other 127.0.0.1 1 127.0.0.1 2")
    watch._news(b"+switch-master", b"chat 127.0.0.1 6379 127.0.0.1 6380")
    assert moved == [("127.0.0.1", 6380)]


# -- discovery ----------------------------------------------------------------


def test_discovery_asks_the_sentinels_in_order_skipping_those_that_do_not_answer():
    """
    A refusing sentinel, one that does not answer in time and one that
    knows no such master are skipped; the first that names the master is
    believed, its connection closed, and the link connects there.
    """
    clock = Clock()
    refusing, silent, ignorant, knowing, last = (Endpoint(port=n) for n in range(1, 6))
    refusing.refusing = True
    servers: dict = {}

    def connectTo(host: str, port: int) -> Endpoint:
        return servers.setdefault((host, port), Endpoint(host, port))

    endpoint = SentinelEndpoint(
        clock, [("s1", refusing), ("s2", silent), ("s3", ignorant), ("s4", knowing), ("s5", last)],
        "chat", connectTo, timeout=2)
    connected = []
    endpoint.connect(FactoryOf(lambda: subscriber(lambda c, m: None))).addCallback(connected.append)
    assert silent.protocols[0].transport.value() == (
        b"*3\r\n$8\r\nSENTINEL\r\n$23\r\nget-master-addr-by-name\r\n$4\r\nchat\r\n")
    clock.advance(2)
    feed(ignorant.protocols[0], b"*-1\r\n")
    feed(knowing.protocols[0], bulk(b"127.0.0.1", b"6380"))
    assert knowing.protocols[0].transport.disconnecting and not last.attempts
    assert list(servers) == [("127.0.0.1", 6380)] and connected == servers[("127.0.0.1", 6380)].protocols


def test_discovery_with_no_sentinel_naming_the_master_says_what_each_said():
    """
    When no sentinel names the master, the attempt fails with what each
    one said, for the owner's log line.
    """
    clock, refusing, ignorant = Clock(), Endpoint(port=1), Endpoint(port=2)
    refusing.refusing = True
    endpoint = SentinelEndpoint(clock, [("s1", refusing), ("s2", ignorant)], "chat",
                                lambda h, p: Endpoint(h, p))
    failures = []
    endpoint.connect(FactoryOf(lambda: subscriber(lambda c, m: None))).addErrback(failures.append)
    feed(ignorant.protocols[0], b"*-1\r\n")
    message = failures[0].getErrorMessage()
    assert "s1: refused" in message and "s2 knows no master 'chat'" in message


# -- outage seqs ----------------------------------------------------------------


def test_events_from_redis_numbered_like_the_nodes_own_outage_events_are_dropped():
    """
    During an outage the node numbers its own events; another node's event
    that Redis gave one of those numbers (or a lower one) is not delivered
    afterwards, so no member sees a seq twice or going back.
    """
    view = NodeRoom(lambda payload, isBinary: payload, History(50, 10**6), lambda s, c: None)
    member = Member()
    view.add(member, {}, "n/1")
    view.activate(member, RoomSnapshot([], None, 0, 0, seq=0), Deferred())
    view.received(8, True, b'{"seq":8,"from":"redis"}', True)
    view.publishLocally(b'{"from":"here"}', record=True)
    view.publishLocally(b'{"from":"here"}', record=True)
    for seq in (9, 10, 11):
        view.received(seq, True, b'{"seq":%d,"from":"redis"}' % seq, True)
    assert [(e["seq"], e["from"]) for e in member.got] == [
        (8, "redis"), (9, "here"), (10, "here"), (11, "redis")]
