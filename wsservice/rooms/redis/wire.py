"""
What travels between the nodes and Redis, as data: where Redis is
(L{BrokerAddress}), the key names (L{Keys}) and the messages on a room's
pub/sub channel (L{decodeChannelMessage}).

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
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit


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
