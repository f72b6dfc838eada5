"""
What travels between the nodes and Redis, as data: where Redis is
(L{BrokerAddress}: a server, or the master Sentinel names), the key names
(L{Keys}) and the messages on a room's pub/sub channel
(L{decodeChannelMessage}).

Messages on a room's channel are one header line and a body, as bytes::

    e <first seq> <flags> <origin node> <replayed 0|1>\\n<event JSON>\\n<event JSON>...
    b <origin node> <replayed 0|1>\\n<base64 of a binary message>

An C{e} message carries the events one node published in one reactor turn,
one per line (compact JSON never holds a raw newline), with consecutive
seqs from the first; C{flags} has one digit per event, odd for an event kept
in the history.  L{wsservice.rooms.redis.scripts.PUBLISH} writes C{e}
messages, nodes write C{b} messages (L{encodeBinaryMessage}).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit


#: The query options a broker URL may have, by scheme.
_OPTIONS = {"redis": ("heartbeat", "prefix"), "redis+sentinel": ("db", "heartbeat", "prefix")}
_USAGE = ("redis://HOST:PORT/DB or "
          "redis+sentinel://HOST:PORT[,HOST:PORT...]/MASTER?db=N")
SENTINEL_PORT = 26379


@dataclass(frozen=True)
class BrokerAddress:
    """
    Where Redis is: C{redis://HOST:PORT/DB}, or the master that Sentinel
    names, C{redis+sentinel://H1:P1,H2:P2[,...]/MASTER?db=N}; both take
    C{heartbeat=S} and C{prefix=P} in the query.

    @ivar heartbeat: seconds between liveness refreshes; a crashed node's
        members are removed after at most four of these.
    @ivar prefix: the Redis key prefix, so deployments can share a database.
    @ivar sentinels: the sentinels' (host, port), in the order they are
        asked; empty for a plain C{redis://} address.
    @ivar master: the name the sentinels monitor the master under.
    """

    host: str = "127.0.0.1"
    port: int = 6379
    db: int = 0
    heartbeat: float = 2.0
    prefix: str = "wss:"
    sentinels: tuple[tuple[str, int], ...] = ()
    master: str = ""

    @classmethod
    def fromURL(cls, url: str) -> "BrokerAddress":
        """
        Parse a broker URL; C{ValueError} says what is wrong with it.
        """
        try:
            parts = urlsplit(url)
        except ValueError as e:
            raise ValueError(f"{url!r}: {e}") from None
        if parts.scheme not in _OPTIONS:
            raise ValueError(f"{url!r}: use {_USAGE}")
        if "@" in parts.netloc:
            raise ValueError(f"{url!r}: user names and passwords are not supported")
        query = parse_qs(parts.query, keep_blank_values=True)
        unknown = sorted(set(query) - set(_OPTIONS[parts.scheme]))
        if unknown:
            raise ValueError(f"{url!r}: unknown option {unknown[0]!r} "
                             f"(known: {', '.join(_OPTIONS[parts.scheme])})")
        heartbeat = _number(url, "heartbeat", query.get("heartbeat", ["2"])[0], float)
        if not 0 < heartbeat <= 60:
            raise ValueError(f"{url!r}: heartbeat must be in (0, 60] seconds")
        prefix = query.get("prefix", ["wss:"])[0]
        if parts.scheme == "redis":
            host, port = _hostPort(url, parts.netloc or "127.0.0.1", 6379)
            path = parts.path.strip("/")
            db = _number(url, "the database", path, int) if path else 0
            return cls(host=host, port=port, db=_database(url, db), heartbeat=heartbeat,
                       prefix=prefix)
        sentinels = tuple(_hostPort(url, item, SENTINEL_PORT)
                          for item in parts.netloc.split(","))
        master = unquote(parts.path[1:])
        if not master or "/" in master:
            raise ValueError(f"{url!r}: name the master after the sentinels: "
                             "redis+sentinel://HOST:PORT,.../MASTER")
        db = _number(url, "db", query.get("db", ["0"])[0], int)
        return cls(db=_database(url, db), heartbeat=heartbeat, prefix=prefix,
                   sentinels=sentinels, master=master)

    def at(self, host: str, port: int) -> "BrokerAddress":
        """
        The plain address of one server (a sentinel, or the master it
        names) with this address's options.
        """
        return replace(self, host=host, port=port, sentinels=(), master="")

    def __str__(self) -> str:
        if self.sentinels:
            where = ",".join(joinHostPort(h, p) for h, p in self.sentinels)
            return f"redis+sentinel://{where}/{self.master}" + (f"?db={self.db}" if self.db else "")
        return f"redis://{joinHostPort(self.host, self.port)}/{self.db}"


def _number(url: str, what: str, text: str, kind: type) -> Any:
    try:
        return kind(text)
    except ValueError:
        raise ValueError(f"{url!r}: {what} must be a number, not {text!r}") from None


def _database(url: str, db: int) -> int:
    if db < 0:
        raise ValueError(f"{url!r}: the database must be 0 or more")
    return db


def _hostPort(url: str, text: str, defaultPort: int) -> tuple[str, int]:
    """
    C{HOST}, C{HOST:PORT} or C{[IPv6]:PORT} as (host, port).
    """
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise ValueError(f"{url!r}: bad address {text!r}")
        portText = rest[1:] if rest else ""
    else:
        host, _, portText = text.rpartition(":") if ":" in text else (text, "", "")
    if not host:
        raise ValueError(f"{url!r}: an address without a host in {text!r}")
    if not portText:
        return host, defaultPort
    if not portText.isdigit() or not 0 < int(portText) < 65536:
        raise ValueError(f"{url!r}: the port in {text!r} must be 1-65535")
    return host, int(portText)


def joinHostPort(host: str, port: int) -> str:
    """
    C{host:port}, with an IPv6 host in brackets.
    """
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class Keys:
    """
    The Redis key names of one deployment (a prefix, so several can share a
    database); L{wsservice.rooms.redis.scripts} says what each holds.
    """

    def __init__(self, prefix: str = "wss:", db: int = 0) -> None:
        self.prefix = prefix
        self.nodes = f"{prefix}nodes"
        # Pub/sub channels are shared by all databases of a Redis server.
        self._channelHead = f"{prefix}db{db}:{{"

    def seq(self, room: str) -> str:
        return f"{self.prefix}{{{room}}}:seq"

    def history(self, room: str) -> str:
        return f"{self.prefix}{{{room}}}:history"

    def historyBytes(self, room: str) -> str:
        return f"{self.prefix}{{{room}}}:history-bytes"

    def members(self, room: str) -> str:
        return f"{self.prefix}{{{room}}}:members"

    def users(self, room: str) -> str:
        return f"{self.prefix}{{{room}}}:users"

    def log(self, room: str) -> str:
        return f"{self.prefix}{{{room}}}:log"

    def logFirst(self, room: str) -> str:
        return f"{self.prefix}{{{room}}}:log-first"

    def logBytes(self, room: str) -> str:
        return f"{self.prefix}{{{room}}}:log-bytes"

    def epoch(self, room: str) -> str:
        return f"{self.prefix}{{{room}}}:epoch"

    def idempotency(self, room: str) -> str:
        """
        The prefix of C{room}'s idempotency keys.
        """
        return f"{self.prefix}idem:{{{room}}}:"

    @property
    def rooms(self) -> str:
        return f"{self.prefix}rooms"

    @property
    def controlChannel(self) -> str:
        return f"{self._channelHead[:-1]}control"

    def userInfo(self, room: str) -> str:
        return f"{self.prefix}{{{room}}}:user-info"

    def channel(self, room: str) -> str:
        return f"{self._channelHead}{room}}}:events"

    def nodeRooms(self, node: str) -> str:
        return f"{self.prefix}node:{node}:rooms"

    def pingChannel(self, node: str) -> str:
        return f"{self._channelHead[:-1]}node:{node}:ping"

    @property
    def channelHead(self) -> str:
        return self._channelHead

    def roomOf(self, channel: str) -> str | None:
        """
        The room a channel name belongs to, or C{None} if it is not ours.
        """
        head, tail = self._channelHead, "}:events"
        if channel.startswith(head) and channel.endswith(tail):
            return channel[len(head):-len(tail)]
        return None


@dataclass(frozen=True)
class EventBatch:
    """
    Events of one room, as the publish script sent them: the C{i}th of
    L{bodies} has seq C{firstSeq + i} and is recorded if C{flags[i]} is odd.
    """

    firstSeq: int
    flags: bytes
    origin: bytes
    replayed: bool
    bodies: list[bytes]

    def events(self) -> list[tuple[int, bool, bytes]]:
        """
        Each event's C{(seq, recorded, body)}.
        """
        flags = self.flags
        return [(self.firstSeq + i, flags[i] & 1 == 1, body) for i, body in enumerate(self.bodies)]


@dataclass(frozen=True)
class BinaryMessage:
    """
    A binary message for a room's members.
    """

    origin: bytes
    replayed: bool
    data: bytes


ChannelMessage = EventBatch | BinaryMessage


def decodeChannelMessage(message: bytes) -> ChannelMessage:
    """
    Read one message from a room's channel.

    @raise ValueError: when it is neither kind, or malformed.
    """
    header, _, body = message.partition(b"\n")
    words = header.split(b" ")
    kind = words[0]
    if kind == b"e" and len(words) == 5:
        bodies = body.split(b"\n")
        flags = words[2]
        if len(flags) != len(bodies) or not flags.isdigit():
            raise ValueError(f"{len(bodies)} events with flags {flags[:20]!r}")
        return EventBatch(int(words[1]), flags, words[3], words[4] == b"1", bodies)
    if kind == b"b" and len(words) == 3:
        return BinaryMessage(words[1], words[2] == b"1", base64.b64decode(body, validate=True))
    raise ValueError(f"not a channel message: {header[:80]!r}")


def encodeBinaryMessage(node: str, replayed: bool, data: bytes) -> bytes:
    """
    The channel message of a binary publish from C{node}.
    """
    return b"b %s %d\n%s" % (node.encode("ascii"), int(replayed), base64.b64encode(data))
