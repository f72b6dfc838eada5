"""
The OpenAPI 3 document of the backend API, served at C{/api/openapi.json}
and tested against the running service (schemathesis), so the two cannot
drift apart.
"""

from __future__ import annotations

from typing import Any

from wsservice import __version__
from wsservice.rooms.names import MAX_ROOM_LENGTH


#: A room name neither starts nor ends with "/" (a chat path could not name it).
ROOM_PATTERN = r"^[^/]([\s\S]*[^/])?$"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*statuses: int) -> dict[str, Any]:
    what = {
        400: "The request is malformed; the message says what to fix.",
        401: "No API key, or not a valid one.",
        404: "No such room.",
        413: "The event is larger than --max-message-size.",
        503: "The broker is unreachable; retry after Retry-After seconds.",
    }
    return {str(s): _json(_ref("Error"), what[s]) for s in (400, 401) + statuses}


_ROOM = {"name": "room", "in": "path", "required": True,
         "description": "The room, as its path names it (/kitchen is kitchen); "
                        "escape a / in it as %2F.",
         "schema": {"type": "string", "minLength": 1, "maxLength": MAX_ROOM_LENGTH,
                    "pattern": ROOM_PATTERN}}

_PUBLISHED_FIELDS = {
    "message": {"type": "string", "description": "The text chat clients show."},
    "name": {"type": "string", "maxLength": 32,
             "description": "Who speaks; empty (the default) is the system."},
    "data": {"description": "Any JSON, passed through to clients as is."},
    "idempotency_key": {"type": "string", "maxLength": 256,
                        "description": "Published once per room within five minutes; a "
                                       "retry gets the first publish's answer."},
    "history": {"type": "boolean", "default": True,
                "description": "Keep it in the room's history for newcomers."},
}


def document() -> dict[str, Any]:
    """
    The OpenAPI 3.0 document, as a dict ready for C{json.dumps}.
    """
    summary = {
        "type": "object",
        "required": ["room", "count", "users", "seq", "epoch"],
        "properties": {
            "room": {"type": "string"},
            "count": {"type": "integer", "minimum": 0, "description": "Connections in it."},
            "users": {"type": "integer", "minimum": 0, "description": "Distinct users among them."},
            "seq": {"type": "integer", "minimum": 0, "description": "Its last event's seq."},
            "epoch": {"type": "string", "description": "Changes when its history is lost."},
        },
    }
    schemas: dict[str, Any] = {
        "Error": {
            "type": "object", "required": ["error"],
            "properties": {"error": {
                "type": "object", "required": ["code", "message"],
                "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
            }},
        },
        "PublishRequest": {"type": "object", "properties": _PUBLISHED_FIELDS},
        "BroadcastRequest": {
            "type": "object", "required": ["rooms"],
            "properties": {
                "rooms": {"type": "array", "minItems": 1, "maxItems": 1000,
                          "items": {"type": "string", "minLength": 1,
                                    "maxLength": MAX_ROOM_LENGTH, "pattern": ROOM_PATTERN}},
                **_PUBLISHED_FIELDS,
            },
        },
        "Published": {
            "type": "object", "required": ["room", "seq", "epoch", "time", "duplicate"],
            "properties": {
                "room": {"type": "string"},
                "seq": {"type": "integer", "minimum": 0,
                        "description": "The event's seq; 0 if it was not numbered: "
                                       "history was false and nobody was in the room (it "
                                       "went nowhere), or the broker connection dropped "
                                       "as it was sent (it is published when the broker "
                                       "is back, once per idempotency_key)."},
                "epoch": {"type": "string"},
                "time": {"type": "string", "description": "Server time, ISO 8601 UTC."},
                "duplicate": {"type": "boolean",
                              "description": "Its idempotency_key was used already: this is "
                                             "the first publish's answer, not a new event."},
            },
        },
        "BroadcastResult": {
            "type": "object", "required": ["results"],
            "properties": {"results": {"type": "array", "items": _ref("Published")}},
        },
        "RoomSummary": summary,
        "RoomList": {
            "type": "object", "required": ["rooms", "next"],
            "properties": {"rooms": {"type": "array", "items": _ref("RoomSummary")},
                           "next": {"type": "string", "nullable": True,
                                    "description": "Pass as after= for the next page."}},
        },
        "RoomInfo": {
            "type": "object", "required": summary["required"] + ["members", "next"],
            "properties": {
                **summary["properties"],
                "members": {"type": "array", "items": {"type": "object"},
                            "description": "The first page of members' presence."},
                "next": {"type": "string", "nullable": True},
            },
        },
        "History": {
            "type": "object", "required": ["room", "epoch", "seq", "complete", "events"],
            "properties": {
                "room": {"type": "string"},
                "epoch": {"type": "string"},
                "seq": {"type": "integer", "minimum": 0},
                "complete": {"type": "boolean",
                             "description": "Whether the events start right after since "
                                            "(false: older ones are no longer kept)."},
                "events": {"type": "array", "items": {"type": "object"},
                           "description": "Events as clients received them, oldest first."},
            },
        },
        "DisconnectRequest": {
            "type": "object",
            "properties": {
                "code": {"type": "integer", "default": 4403,
                         "anyOf": [{"enum": [1000]}, {"minimum": 3000, "maximum": 4999}],
                         "description": "1000 or 3000-4999; 4403 tells clients not to "
                                        "reconnect, 4000-4099 to reconnect."},
                "reason": {"type": "string", "maxLength": 123},
            },
        },
        "Disconnected": {
            "type": "object", "required": ["nodes"],
            "properties": {"nodes": {"type": "integer", "minimum": 0,
                                     "description": "Processes that were told."}},
        },
        "Info": {
            "type": "object",
            "required": ["version", "node", "broker", "nodes", "workers", "connections", "rooms"],
            "properties": {
                "version": {"type": "string"},
                "node": {"type": "string", "nullable": True},
                "broker": {"type": "string", "nullable": True},
                "nodes": {"type": "array", "items": {"type": "string"},
                          "description": "Every live process sharing the broker."},
                "workers": {"type": "integer", "minimum": 1,
                            "description": "Worker processes on this machine's port."},
                "connections": {"type": "integer", "minimum": 0},
                "rooms": {"type": "integer", "minimum": 0, "nullable": True},
            },
        },
    }

    def body(name: str) -> dict[str, Any]:
        return {"required": True, "content": {"application/json": {"schema": _ref(name)}}}

    def limit(default: int) -> dict[str, Any]:
        return {"name": "limit", "in": "query",
                "schema": {"type": "integer", "minimum": 1, "maximum": 1000,
                           "default": default}}

    def disconnect(operation: str, who: str, summary: str) -> dict[str, Any]:
        return {"post": {
            "operationId": operation, "summary": summary,
            "parameters": [{"name": who, "in": "path", "required": True,
                            "schema": {"type": "string", "minLength": 1, "maxLength": 256}}],
            "requestBody": body("DisconnectRequest"),
            "responses": {"200": _json(_ref("Disconnected"), "Sent to every process."),
                          **_errors(503)},
        }}

    paths = {
        "/api/info": {"get": {
            "operationId": "info", "summary": "This process and the processes it shares rooms with.",
            "responses": {"200": _json(_ref("Info"), "About the service."), **_errors(503)},
        }},
        "/api/rooms": {"get": {
            "operationId": "listRooms", "summary": "Rooms by name, a page at a time.",
            "parameters": [
                {"name": "prefix", "in": "query",
                 "schema": {"type": "string", "maxLength": MAX_ROOM_LENGTH}},
                {"name": "after", "in": "query",
                 "schema": {"type": "string", "maxLength": MAX_ROOM_LENGTH}},
                limit(100),
            ],
            "responses": {"200": _json(_ref("RoomList"), "A page of rooms."), **_errors(503)},
        }},
        "/api/rooms/{room}": {"get": {
            "operationId": "getRoom", "summary": "One room's counts and first members.",
            "parameters": [_ROOM],
            "responses": {"200": _json(_ref("RoomInfo"), "The room."), **_errors(404, 503)},
        }},
        "/api/rooms/{room}/history": {"get": {
            "operationId": "getHistory", "summary": "The room's events after a seq.",
            "parameters": [
                _ROOM,
                {"name": "since", "in": "query",
                 "schema": {"type": "integer", "minimum": 0, "maximum": 2**53 - 1,
                            "default": 0}},
                limit(100),
            ],
            "responses": {"200": _json(_ref("History"), "The events."), **_errors(404, 503)},
        }},
        "/api/rooms/{room}/publish": {"post": {
            "operationId": "publish", "summary": "Publish a message into a room.",
            "parameters": [_ROOM], "requestBody": body("PublishRequest"),
            "responses": {"200": _json(_ref("Published"), "Published (or a duplicate)."),
                          **_errors(413, 503)},
        }},
        "/api/broadcast": {"post": {
            "operationId": "broadcast", "summary": "Publish one message into many rooms.",
            "requestBody": body("BroadcastRequest"),
            "responses": {"200": _json(_ref("BroadcastResult"), "One result per room."),
                          **_errors(413, 503)},
        }},
        "/api/users/{user}/disconnect": disconnect(
            "disconnectUser", "user",
            "Close every connection of a user (by token subject), everywhere."),
        "/api/connections/{connection}/disconnect": disconnect(
            "disconnectConnection", "connection",
            "Close one connection, by the id its welcome gave."),
    }
    return {
        "openapi": "3.0.3",
        "info": {"title": "wsservice backend API", "version": __version__,
                 "description": "Publish into rooms, look at them and disconnect users from "
                                "your own servers."},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer",
                                           "description": "A key from --api-key-file."}},
        },
        "security": [{"apiKey": []}],
    }
