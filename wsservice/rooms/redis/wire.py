"""
What travels between the nodes and Redis, as data: where Redis is
(L{BrokerAddress}), the key names (L{Keys}) and the messages on a room's
pub/sub channel (L{decodeChannelMessage}).

Messages on a room's channel are one header line and a body::

    e <seq> <recorded 0|1> <origin node> <replayed 0|1>\\n<event JSON>
    b <origin node> <replayed 0|1>\\n<base64 of a binary message>
    p <member field>\\n<presence JSON, or empty when the member left>

The scripts in L{wsservice.rooms.redis.scripts} write the C{e} and C{p}
lines; nodes write C{b} lines (L{encodeBinaryMessage}).
"""

from __future__ import annotations

import base64
import json
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

    def channel(self, room: str) -> str:
        return f"{self._channelHead}{room}}}:events"

    def nodeRooms(self, node: str) -> str:
        return f"{self.prefix}node:{node}:rooms"

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
class EventMessage:
    """
    A room event with its seq, as the publish script sent it.
    """

    seq: int
    recorded: bool
    origin: str
    replayed: bool
    body: bytes


@dataclass(frozen=True)
class BinaryMessage:
    """
    A binary message for a room's members.
    """

    origin: str
    replayed: bool
    data: bytes


@dataclass(frozen=True)
class PresenceMessage:
    """
    A member's presence changed: C{info} is its presence, or C{None} once it
    left.
    """

    field: str
    info: dict[str, Any] | None

    @property
    def node(self) -> str:
        return self.field.split("/", 1)[0]


ChannelMessage = EventMessage | BinaryMessage | PresenceMessage


def decodeChannelMessage(text: str) -> ChannelMessage:
    """
    Read one message from a room's channel.

    @raise ValueError: when it is none of the three kinds.
    """
    header, _, body = text.partition("\n")
    words = header.split(" ")
    kind = words[0]
    if kind == "e" and len(words) == 5:
        return EventMessage(int(words[1]), words[2] == "1", words[3], words[4] == "1",
                            body.encode("utf-8"))
    if kind == "b" and len(words) in (2, 3):
        return BinaryMessage(words[1], len(words) > 2 and words[2] == "1",
                             base64.b64decode(body, validate=True))
    if kind == "p" and len(words) == 2:
        return PresenceMessage(words[1], json.loads(body) if body else None)
    raise ValueError(f"not a channel message: {header[:80]!r}")


def encodeBinaryMessage(node: str, replayed: bool, data: bytes) -> str:
    """
    The channel message of a binary publish from C{node}.
    """
    return f"b {node} {int(replayed)}\n" + base64.b64encode(data).decode("ascii")


def encodeInfo(info: Any) -> str:
    """
    A presence dict as the members hash and C{p} lines hold it.
    """
    return json.dumps(info, ensure_ascii=False, separators=(",", ":"))


def pairs(flat: list[Any]) -> dict[str, Any]:
    """
    A flat C{[field, JSON, field, JSON, ...]} reply as a dict of decoded
    values.
    """
    return {flat[i]: json.loads(flat[i + 1]) for i in range(0, len(flat) - 1, 2)}
