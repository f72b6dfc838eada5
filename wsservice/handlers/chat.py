"""
The C{chat} subprotocol: rooms of people, one room per URL path.

C{ws://host:60000/kitchen} is room C{kitchen}; C{/} is room C{lobby}.  An
optional C{?name=alice} query parameter names the connection from the start.
Every server-to-client frame is a JSON object with at least C{type}, C{name}
and C{message}, so the seed clients that print C{name: message} keep working.
Events are sent to every member of the room, sender included, in the order
the server received them.  Room events carry C{room}, C{seq} (per room,
strictly increasing: a gap means something was missed), C{epoch} (the life
of the room the seq counts in) and C{time} (server time, ISO 8601 UTC).
System events have C{"name": ""}; people always have a non-empty name, so a
person cannot pass for the system.  A client that reconnects with
C{?since=SEQ&epoch=EPOCH} is sent what it missed instead of a welcome (see
"resumed" below).

Client to server (text frames)::

    {"name": "alice", "message": "hi"}   a message; "name" also renames
    {"message": "hi"}                    a message under the current name
    {"type": "rename", "name": "bob"}    change name (also "join")
    {"type": "members", "after": "100"}  the next page of members, after the
                                         cursor a welcome or page gave
    hello there                          any text that is not a JSON object
                                         is a message with that text
    <binary frame>                       relayed to the room as binary

Server to client::

    {"type": "welcome", "name": "", "message": "Connected!", "room": "kitchen",
     "id": "c7", "you": "alice", "seq": 41, "epoch": "5f0c1e9a2b3d", "count": 2, "users": 2,
     "members": [{"id": "c3", "name": "bob"}, {"id": "c7", "name": "alice"}],
     "next": null}
        first, to the newcomer only: "seq" is the room's last sequence number,
        "count" its members (connections), "users" the distinct people among
        them; "members" is the first page of at most --presence-list members,
        and "next" the cursor of the next page (null: that was all)

    {"type": "resumed", "name": "", "message": "", "room": "kitchen",
     "recovered": true, "missed": 2, "id": "c9", "seq": 45, "epoch": ..., "count": 2, ...}
        instead of the welcome, to a client that came back with ?since= and
        ?epoch= the room still holds every event after: exactly those
        "missed" events follow, as every member got them, then live ones

    {"type": "resumed", "name": "", "room": "kitchen", "recovered": false,
     "message": "what was missed could not be recovered"}
        before the welcome and history, when the gap cannot be filled

    {"type": "history", "name": "", "message": "", "room": "kitchen",
     "messages": [<message events, oldest first>]}
        second, to the newcomer only, when the room has history

    {"type": "presence", "name": "", "message": "alice and bob joined",
     "joined": [{"id": "c7", "name": "alice"}, {"id": "c8", "name": "bob"}],
     "joinedCount": 2, "left": [], "leftCount": 0,
     "renamed": [{"id": "c3", "name": "al", "previous": "albert"}], "renamedCount": 1,
     "count": 3, "users": 3, "room": "kitchen", "seq": 42, "time": "2026-11-23T18:44:48.123Z"}
        the room's joins, leaves and renames of the last --presence-interval,
        in one event; each list holds at most --presence-list entries, and
        above --presence-limit members the lists are empty (counts only)

    {"type": "members", "name": "", "message": "", "room": "kitchen",
     "members": [...], "next": "200", "count": 2503, "users": 2503}
        a page of members, to the one who asked

    {"type": "message", "name": "alice", "message": "hi", "id": "c7",
     "room": "kitchen", "seq": 43, "time": "2026-11-23T18:44:49.001Z"}

    {"type": "error", "name": "", "message": "name must be a string"}
        to the sender only; the connection stays open
"""

from __future__ import annotations

import json
import unicodedata
from typing import Any

from twisted.plugin import IPlugin
from zope.interface import implementer, provider

from wsservice import closecodes
from wsservice.interfaces import IConnection, IHandler, IHandlerContext, IHandlerFactory
from wsservice.rooms.events import Resume, encodeJSON
from wsservice.rooms.names import DEFAULT_ROOM, MAX_ROOM_LENGTH, roomFromPath
from wsservice.timefmt import isoUTC

ANONYMOUS = "anonymous"


def wellFormed(text: str) -> str:
    """
    C{text} with every lone surrogate (valid JSON can carry C{"\\ud800"},
    which no UTF-8 frame can) replaced by U+FFFD.
    """
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text


def cleanName(raw: Any, limit: int) -> str:
    """
    A display name: control characters removed, white space trimmed and
    folded, at most C{limit} characters; empty becomes L{ANONYMOUS}.
    """
    if not isinstance(raw, str):
        return ANONYMOUS
    printable = "".join(
        " " if ch.isspace() else ch
        for ch in raw
        if ch.isspace() or unicodedata.category(ch)[0] != "C"
    )
    name = " ".join(wellFormed(printable).split())[:limit].strip()
    return name or ANONYMOUS


class ChatError(ValueError):
    """
    A client message that cannot be understood; the text goes back to the
    client.
    """


@provider(IPlugin, IHandlerFactory)
@implementer(IHandler)
class ChatHandler:
    """
    One person in one chat room.
    """

    subprotocol = "chat"
    description = "chat rooms by URL path: names, presence, history, ordered JSON messages"
    #: People type; a client sending more than this is a script gone wrong.
    maxMessagesPerSecond = 100

    __slots__ = (
        "_connection",
        "_rooms",
        "_log",
        "_nameLimit",
        "_room",
        "_name",
        "_joined",
        "_gone",
        "_early",
    )

    def __init__(self, connection: IConnection, context: IHandlerContext) -> None:
        self._connection = connection
        self._rooms = context.rooms
        self._log = context.log
        self._nameLimit = context.settings.maxNameLength
        self._room = roomFromPath(connection.request.path)
        identity = connection.identity
        if identity is not None:
            self._name = cleanName(identity.name, self._nameLimit)
        else:
            query = connection.request.query.get("name", ())
            self._name = cleanName(query[0] if query else "", self._nameLimit)
        self._joined = False
        self._gone = False
        self._early: list[tuple[bytes, bool]] | None = None

    def _me(self) -> dict[str, Any]:
        """
        This member's presence: a signed-in user is one member however many
        connections it has (its user id), anyone else one per connection.
        """
        identity = self._connection.identity
        if identity is None:
            return {"id": self._connection.id, "name": self._name}
        me: dict[str, Any] = {"id": identity.user, "name": self._name}
        if identity.info:
            me["info"] = dict(identity.info)
        return me

    def _send(self, event: dict[str, Any]) -> None:
        self._connection.sendText(encodeJSON(event).decode("utf-8"))

    def _sendWith(self, event: dict[str, Any], **frames: list[bytes]) -> None:
        """
        Send C{event} with JSON arrays spliced in from C{frames}, the bytes
        the room keeps, without decoding and encoding them again.
        """
        head = encodeJSON(event)[:-1]
        for key, items in frames.items():
            head += b',"%s":[%s]' % (key.encode("ascii"), b",".join(items))
        self._connection.sendText((head + b"}").decode("utf-8"))

    def onOpen(self) -> None:
        if len(self._room) > MAX_ROOM_LENGTH:
            self._gone = True
            self._connection.close(
                closecodes.POLICY_VIOLATION, f"room name longer than {MAX_ROOM_LENGTH}"
            )
            return
        self._rooms.join(self._room, self._connection, self._me(), self._resumeFrom()).addCallback(
            self._welcome
        ).addErrback(self._failed)

    def _resumeFrom(self) -> Resume | None:
        """
        Where a reconnecting client left off: C{?since=SEQ&epoch=E}.
        """
        query = self._connection.request.query
        since, epoch = query.get("since", ("",))[0], query.get("epoch", ("",))[0]
        if not since.isdigit() or not epoch or len(since) > 18:
            return None
        return Resume(int(since), epoch)

    def _failed(self, failure: Any) -> None:
        self._log.failure("chat join failed on {id}", failure, id=self._connection.id)
        self._connection.close(closecodes.INTERNAL_ERROR, "internal error")

    def _welcome(self, snapshot: Any) -> None:
        if self._gone:
            self._rooms.leave(self._room, self._connection)
            return
        self._joined = True
        welcome = {
            "type": "welcome",
            "name": "",
            "message": "Connected!",
            "room": self._room,
            "id": self._connection.id,
            "you": self._name,
            "seq": snapshot.seq,
            "epoch": snapshot.epoch,
            "count": snapshot.count,
            "users": snapshot.users,
            "next": snapshot.next,
        }
        identity = self._connection.identity
        if identity is not None:
            welcome["user"] = identity.user
            welcome["expires"] = isoUTC(identity.expires) if identity.expires else None
        if snapshot.resumed:
            # Exactly what it missed, as every member got it; no welcome.
            self._send({**welcome, "type": "resumed", "message": "", "recovered": True,
                        "missed": len(snapshot.missed), "next": None})
            for frame in snapshot.missed:
                self._connection.sendText(frame.decode("utf-8"))
        else:
            if snapshot.resumed is False:
                self._send({"type": "resumed", "name": "", "room": self._room, "recovered": False,
                            "message": "what was missed could not be recovered"})
            self._sendWith(welcome, members=list(snapshot.memberFrames))
            if snapshot.frames:
                self._sendWith({"type": "history", "name": "", "message": "", "room": self._room},
                               messages=list(snapshot.frames))
        if snapshot.first:
            self._rooms.announce(self._room, "joined", self._me())
        early, self._early = self._early, None
        for payload, isBinary in early or ():
            self.onMessage(payload, isBinary)

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        if not self._joined:
            if self._early is None:
                self._early = []
            self._early.append((payload, isBinary))
            return
        if isBinary:
            self._rooms.publishBinary(self._room, payload)
            return
        try:
            self._handleText(payload.decode("utf-8"))
        except ChatError as e:
            self._send({"type": "error", "name": "", "message": str(e)})

    def _handleText(self, text: str) -> None:
        try:
            request = json.loads(text)
        except (ValueError, RecursionError):
            request = None  # deeper than the parser goes is not JSON to us
        if not isinstance(request, dict):
            self._say(text)
            return
        kind = request.get("type", "message")
        if kind == "members":
            self._members(request.get("after"))
            return
        if kind == "refresh":
            self._refresh(request.get("token"))
            return
        if "name" in request:
            if not isinstance(request["name"], str):
                raise ChatError("name must be a string")
            if self._connection.identity is None:
                self._rename(request["name"])
            elif kind in ("join", "rename"):
                raise ChatError("your name comes from your sign-in and cannot be changed here")
        if kind in ("join", "rename"):
            if "name" not in request:
                raise ChatError(f'{kind} needs a "name"')
            return
        if kind != "message":
            raise ChatError(f"unknown type {repr(kind)[:40]}; send {{\"message\": \"text\"}}")
        message = request.get("message")
        if not isinstance(message, str):
            raise ChatError('a message needs "message": a string')
        self._say(wellFormed(message))

    def _members(self, after: Any) -> None:
        if after is not None and not isinstance(after, str):
            raise ChatError('"after" must be the "next" cursor of a welcome or members page')

        def page(result: Any) -> None:
            self._sendWith(
                {"type": "members", "name": "", "message": "", "room": self._room,
                 "next": result.next, "count": result.count, "users": result.users},
                members=list(result.memberFrames),
            )

        def failed(failure: Any) -> None:
            self._log.failure("member page failed on {id}", failure, id=self._connection.id)
            self._send({"type": "error", "name": "", "message": "the member list is not available now"})

        self._rooms.memberPage(self._room, after).addCallbacks(page, failed)

    def _refresh(self, token: Any) -> None:
        if not isinstance(token, str) or not token:
            raise ChatError('a refresh needs "token": the new token')

        def refreshed(identity: Any) -> None:
            self._send({"type": "refreshed", "name": "", "message": "token refreshed",
                        "expires": isoUTC(identity.expires) if identity.expires else None})

        def refused(failure: Any) -> None:
            why = getattr(failure.value, "reason", None) or "the token was refused"
            self._send({"type": "error", "name": "", "message": f"refresh refused: {why}"})

        self._connection.refresh(token).addCallbacks(refreshed, refused)

    def _say(self, message: str) -> None:
        event = {"type": "message", "name": self._name, "message": message,
                 "id": self._connection.id}
        identity = self._connection.identity
        if identity is not None:
            event["user"] = identity.user
        self._rooms.publish(self._room, event, record=True)

    def _rename(self, raw: str) -> None:
        name = cleanName(raw, self._nameLimit)
        if name == self._name:
            return
        previous, self._name = self._name, name
        self._rooms.update(self._room, self._connection, self._me())
        self._rooms.announce(self._room, "renamed", {**self._me(), "previous": previous})

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        self._gone = True
        if not self._joined:
            return
        self._joined = False
        me = self._me()

        def left(last: bool) -> None:
            if last:
                self._rooms.announce(self._room, "left", me)

        self._rooms.leave(self._room, self._connection).addCallback(left).addErrback(
            lambda f: self._log.failure("chat leave failed on {id}", f, id=self._connection.id))
