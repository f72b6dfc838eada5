"""
C{/api}: the backend API, JSON over HTTP, on the service's port or on a
listener of its own (C{--api-listen}).

Every endpoint but C{GET /api/openapi.json} needs C{Authorization: Bearer
<key>} with one of the C{--api-key-file} keys.  Errors are C{{"error":
{"code": ..., "message": ...}}} with the HTTP status that fits; the
document in L{wsservice.api.openapi} lists them all.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Callable, Mapping
from urllib.parse import unquote_to_bytes

from twisted.internet.defer import Deferred, gatherResults, maybeDeferred
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from wsservice import __version__, closecodes
from wsservice.api.control import disconnectMessage
from wsservice.api.keys import APIKeys
from wsservice.api.openapi import document
from wsservice.interfaces import IBrokerStatus, IRoomAdmin, IRoomCounts, IRoomHub
from wsservice.rooms.events import Published
from wsservice.rooms.names import MAX_ROOM_LENGTH

#: The most rooms one broadcast may name.
MAX_BROADCAST = 1000
#: The most rooms, or events, one page may hold.
MAX_PAGE = 1000
#: The longest idempotency key, user id or reason.
MAX_KEY = 256
MAX_REASON = 123
#: The largest seq a query may name (the largest integer JSON keeps exact).
MAX_SEQ = 2**53 - 1


class APIError(Exception):
    """
    A request the API answers with C{status} and an error document.
    """

    def __init__(self, status: int, code: str, message: str, **headers: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers


@dataclass(frozen=True)
class APIContext:
    """
    What the API acts on.

    @ivar rooms: the rooms it publishes into.
    @ivar admin: the view of every room, wherever its members are.
    @ivar keys: the keys that open it.
    @ivar maxEventSize: the largest event it publishes, in bytes.
    @ivar openConnections: this process's open WebSocket connections.
    @ivar nameLimit: the longest C{name} of a published message.
    @ivar workers: the worker processes serving this port (C{--workers}).
    """

    rooms: IRoomHub
    admin: IRoomAdmin
    keys: APIKeys
    maxEventSize: int
    openConnections: Callable[[], int]
    nameLimit: int = 32
    workers: int = 1


Route = Callable[[Request, list[str]], Any]


class APIResource(Resource):
    """
    The C{/api} tree, routed here rather than by child resources so that
    every path, known or not, gets a JSON answer.
    """

    isLeaf = True
    _log = Logger()

    def __init__(self, context: APIContext) -> None:
        super().__init__()
        self._context = context
        self._openapi = json.dumps(document(), indent=1).encode("utf-8")
        # (method, path pattern) -> route; "{}" is one path segment.
        self._routes: dict[tuple[bytes, tuple[str, ...]], Route] = {
            (b"GET", ("info",)): self._info,
            (b"GET", ("rooms",)): self._roomList,
            (b"GET", ("rooms", "{}")): self._roomInfo,
            (b"GET", ("rooms", "{}", "history")): self._history,
            (b"POST", ("rooms", "{}", "publish")): self._publish,
            (b"POST", ("broadcast",)): self._broadcast,
            (b"POST", ("users", "{}", "disconnect")): self._disconnectUser,
            (b"POST", ("connections", "{}", "disconnect")): self._disconnectConnection,
        }

    # -- dispatch -------------------------------------------------------------

    def render(self, request: Request) -> Any:
        request.setHeader(b"cache-control", b"no-store")
        try:
            segments = self._segments(request)
            if segments == ["openapi.json"] and request.method in (b"GET", b"HEAD"):
                request.setHeader(b"content-type", b"application/json")
                return self._openapi
            route, params = self._route(request.method, segments)
            self._authorize(request)
            result = route(request, params)
        except APIError as e:
            return self._error(request, e)
        except Exception:
            self._log.failure("API request {method} {uri} failed",
                              method=request.method, uri=request.uri)
            return self._error(request, APIError(500, "internal", "the request failed; see the log"))
        if not isinstance(result, Deferred):
            return self._json(request, 200, result)
        gone: list[bool] = []
        request.notifyFinish().addErrback(lambda _: gone.append(True))

        def answer(value: Any) -> None:
            if not gone:
                request.write(self._json(request, 200, value))
                request.finish()

        def failed(failure: Failure) -> None:
            if failure.check(APIError):
                body = self._error(request, failure.value)
            elif failure.check(ConnectionError):
                body = self._error(request, self._brokerDown())
            else:
                self._log.failure("API request {method} {uri} failed", failure,
                                  method=request.method, uri=request.uri)
                body = self._error(request, APIError(500, "internal",
                                                     "the request failed; see the log"))
            if not gone:
                request.write(body)
                request.finish()

        result.addCallbacks(answer, failed)
        return NOT_DONE_YET

    def _segments(self, request: Request) -> list[str]:
        # The raw path, so a room name may hold an escaped "/" (%2F).
        raw = request.uri.split(b"?", 1)[0]
        parts = raw.split(b"/")[2:]  # after "" and "api"
        if parts and parts[-1] == b"":
            parts.pop()
        try:
            return [unquote_to_bytes(p).decode("utf-8") for p in parts]
        except UnicodeDecodeError:
            raise APIError(400, "bad_path", "the path is not UTF-8 once unescaped")

    def _route(self, method: bytes, segments: list[str]) -> tuple[Route, list[str]]:
        allowed = []
        for (verb, pattern), route in self._routes.items():
            if len(pattern) != len(segments):
                continue
            if all(p == "{}" or p == s for p, s in zip(pattern, segments)):
                if verb == method:
                    return route, [s for p, s in zip(pattern, segments) if p == "{}"]
                allowed.append(verb.decode("ascii"))
        if allowed:
            raise APIError(405, "method_not_allowed",
                           f"use {' or '.join(sorted(allowed))} here", Allow=", ".join(allowed))
        raise APIError(404, "not_found", "no such endpoint; see /api/openapi.json")

    def _authorize(self, request: Request) -> None:
        header = request.getHeader(b"authorization") or b""
        scheme, _, key = header.partition(b" ")
        if scheme.lower() != b"bearer" or not key.strip():
            raise APIError(401, "unauthorized", "send Authorization: Bearer <API key>",
                           **{"WWW-Authenticate": 'Bearer realm="wsservice"'})
        if not self._context.keys.allows(key.strip()):
            raise APIError(401, "unauthorized", "that API key is not valid",
                           **{"WWW-Authenticate": 'Bearer realm="wsservice", error="invalid_token"'})

    def _json(self, request: Request, status: int, value: Any) -> bytes:
        request.setResponseCode(status)
        request.setHeader(b"content-type", b"application/json")
        return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")

    def _error(self, request: Request, error: APIError) -> bytes:
        for name, value in error.headers.items():
            request.setHeader(name.encode("ascii"), value.encode("utf-8"))
        return self._json(request, error.status,
                          {"error": {"code": error.code, "message": error.message}})

    def _brokerDown(self) -> APIError:
        return APIError(503, "broker_unavailable",
                        "the broker is unreachable; retry (with the same idempotency_key)",
                        **{"Retry-After": "1"})

    def _requireBroker(self) -> None:
        broker = IBrokerStatus(self._context.rooms, None)
        if broker is not None and broker.brokerState() != "connected":
            raise self._brokerDown()

    # -- reading requests ---------------------------------------------------------

    def _body(self, request: Request) -> dict[str, Any]:
        content = request.content.read() if request.content is not None else b""
        try:
            body = json.loads(content)
        except (ValueError, RecursionError):
            raise APIError(400, "bad_json", "the body is not JSON")
        if not isinstance(body, dict):
            raise APIError(400, "bad_json", "the body must be a JSON object")
        return body

    def _query(self, request: Request, name: str) -> str | None:
        values = request.args.get(name.encode("ascii"))
        if not values:
            return None
        try:
            return values[-1].decode("utf-8")
        except UnicodeDecodeError:
            raise APIError(400, "bad_query", f"{name} is not UTF-8")

    def _number(self, request: Request, name: str, default: int, low: int, high: int) -> int:
        raw = self._query(request, name)
        if raw is None:
            return default
        if not raw.isascii() or not raw.isdigit() or not low <= int(raw) <= high:
            raise APIError(400, "bad_query", f"{name} must be a whole number from {low} to {high}")
        return int(raw)

    def _room(self, raw: str) -> str:
        if (not raw or raw != raw.strip("/") or len(raw) > MAX_ROOM_LENGTH
                or any(0xD800 <= ord(c) <= 0xDFFF for c in raw)):
            raise APIError(400, "bad_room",
                           f"a room name has 1 to {MAX_ROOM_LENGTH} characters and does not "
                           "start or end with /")
        return raw

    def _string(self, body: Mapping[str, Any], name: str, limit: int | None,
                default: str | None = None) -> str | None:
        if name not in body:
            return default
        value = body[name]
        if not isinstance(value, str):
            raise APIError(400, "bad_field", f"{name} must be a string")
        if limit is not None and len(value) > limit:
            raise APIError(400, "bad_field", f"{name} must be at most {limit} characters")
        if any(0xD800 <= ord(c) <= 0xDFFF for c in value):
            raise APIError(400, "bad_field", f"{name} holds a lone surrogate")
        return value

    # -- endpoints ------------------------------------------------------------

    def _info(self, request: Request, params: list[str]) -> Deferred[dict[str, Any]]:
        context = self._context
        broker = IBrokerStatus(context.rooms, None)
        counts = IRoomCounts(context.rooms, None)

        def info(nodes: list[str]) -> dict[str, Any]:
            return {
                "version": __version__,
                "node": broker.node if broker is not None else None,
                "broker": broker.brokerState() if broker is not None else None,
                "nodes": nodes,
                "workers": context.workers,
                "connections": context.openConnections(),
                "rooms": counts.roomCount() if counts is not None else None,
            }

        return context.admin.nodes().addCallback(info)

    def _roomList(self, request: Request, params: list[str]) -> Deferred[dict[str, Any]]:
        prefix = self._query(request, "prefix") or ""
        after = self._query(request, "after")
        limit = self._number(request, "limit", 100, 1, MAX_PAGE)
        if len(prefix) > MAX_ROOM_LENGTH or (after is not None and len(after) > MAX_ROOM_LENGTH):
            raise APIError(400, "bad_query", f"prefix and after have at most {MAX_ROOM_LENGTH} "
                           "characters")
        d = self._context.admin.roomList(prefix, after, limit)
        return d.addCallback(lambda page: {"rooms": page[0], "next": page[1]})

    def _roomInfo(self, request: Request, params: list[str]) -> Deferred[dict[str, Any]]:
        room = self._room(params[0])
        return self._context.admin.roomInfo(room).addCallback(self._found, room)

    def _found(self, value: Any, room: str) -> Any:
        if value is None:
            raise APIError(404, "no_room", f"room {room} has no members and no history")
        return value

    def _history(self, request: Request, params: list[str]) -> Deferred[dict[str, Any]]:
        room = self._room(params[0])
        since = self._number(request, "since", 0, 0, MAX_SEQ)
        limit = self._number(request, "limit", 100, 1, MAX_PAGE)

        def shaped(found: dict[str, Any]) -> dict[str, Any]:
            events = [json.loads(frame) for frame in found["events"]]
            complete = (events[0]["seq"] == since + 1) if events else found["seq"] == since
            return {"room": room, "epoch": found["epoch"], "seq": found["seq"],
                    "complete": complete, "events": events}

        d = self._context.admin.history(room, since, limit)
        return d.addCallback(self._found, room).addCallback(shaped)

    def _event(self, body: Mapping[str, Any]) -> dict[str, Any]:
        # Its size is bounded below, with the rest of the event.
        message = self._string(body, "message", None, default="")
        name = self._string(body, "name", self._context.nameLimit, default="")
        event: dict[str, Any] = {"type": "message", "name": name, "message": message,
                                 "source": "api"}
        if "data" in body:
            event["data"] = body["data"]
        try:
            size = len(json.dumps(event, ensure_ascii=False).encode("utf-8"))
        except (UnicodeEncodeError, RecursionError):
            raise APIError(400, "bad_field", "data holds a lone surrogate or is nested too deep")
        if size > self._context.maxEventSize:
            raise APIError(413, "too_large",
                           f"the event is {size} bytes; at most {self._context.maxEventSize}")
        return event

    def _options(self, body: Mapping[str, Any]) -> tuple[str | None, bool]:
        key = self._string(body, "idempotency_key", MAX_KEY)
        history = body.get("history", True)
        if not isinstance(history, bool):
            raise APIError(400, "bad_field", "history must be true or false")
        return (key or None), history

    def _publish(self, request: Request, params: list[str]) -> Deferred[dict[str, Any]]:
        room = self._room(params[0])
        body = self._body(request)
        event = self._event(body)
        key, history = self._options(body)
        self._requireBroker()
        d = maybeDeferred(self._context.rooms.publish, room, event, history, key)
        return d.addCallback(_published, room)

    def _broadcast(self, request: Request, params: list[str]) -> Deferred[dict[str, Any]]:
        body = self._body(request)
        rooms = body.get("rooms")
        if (not isinstance(rooms, list) or not 1 <= len(rooms) <= MAX_BROADCAST
                or not all(isinstance(r, str) for r in rooms)):
            raise APIError(400, "bad_field", f"rooms must be a list of 1 to {MAX_BROADCAST} names")
        names = list(dict.fromkeys(self._room(r) for r in rooms))
        event = self._event(body)
        key, history = self._options(body)
        self._requireBroker()
        publishes = [maybeDeferred(self._context.rooms.publish, room, event, history, key)
                     .addCallback(_published, room) for room in names]
        d = gatherResults(publishes, consumeErrors=True)
        d.addErrback(lambda failure: failure.value.subFailure)  # the first error, as is
        return d.addCallback(lambda results: {"results": results})

    def _disconnect(self, request: Request, user: str | None,
                    connection: str | None) -> Deferred[dict[str, Any]]:
        body = self._body(request)
        code = body.get("code", closecodes.FORBIDDEN)
        if (not isinstance(code, int) or isinstance(code, bool)
                or not (code == 1000 or 3000 <= code <= 4999)):
            raise APIError(400, "bad_field", "code must be 1000 or from 3000 to 4999")
        # A close frame carries 123 bytes of it; closeWith cuts it there.
        reason = self._string(body, "reason", MAX_REASON, default="disconnected by the server")
        message = disconnectMessage(code, reason, user=user, connection=connection)
        d = self._context.admin.control(message)
        return d.addCallback(lambda nodes: {"nodes": nodes})

    def _disconnectUser(self, request: Request, params: list[str]) -> Deferred[dict[str, Any]]:
        return self._disconnect(request, self._who(params[0], "user"), None)

    def _disconnectConnection(self, request: Request,
                              params: list[str]) -> Deferred[dict[str, Any]]:
        return self._disconnect(request, None, self._who(params[0], "connection"))

    def _who(self, raw: str, what: str) -> str:
        if not raw or len(raw) > MAX_KEY:
            raise APIError(400, "bad_path", f"a {what} id has 1 to {MAX_KEY} characters")
        return raw


def _published(published: Published, room: str) -> dict[str, Any]:
    return {"room": room, "seq": published.seq, "epoch": published.epoch,
            "time": published.time, "duplicate": published.duplicate}
