"""
What a process does with a control message the backend API sent to every
process (L{wsservice.interfaces.IRoomAdmin.control}): close the chosen
connections it holds.
"""

from __future__ import annotations

from typing import Any, Mapping

from twisted.logger import Logger

from wsservice.websocket.factory import ServiceFactory


def disconnectMessage(code: int, reason: str, user: str | None = None,
                      connection: str | None = None) -> dict[str, Any]:
    """
    The control message that closes C{user}'s connections, or the one
    connection whose id is C{connection}, everywhere.
    """
    if (user is None) == (connection is None):
        raise ValueError("name a user or a connection, not both")
    message: dict[str, Any] = {"op": "disconnect", "code": code, "reason": reason}
    if user is not None:
        message["user"] = user
    else:
        message["connection"] = connection
    return message


class ControlHandler:
    """
    Acts on control messages in one process, for its L{ServiceFactory}.
    """

    _log = Logger()

    def __init__(self, factory: ServiceFactory) -> None:
        self._factory = factory

    def __call__(self, message: Mapping[str, Any]) -> int:
        """
        Act on C{message}; return how many connections it touched here.
        """
        if message.get("op") != "disconnect":
            self._log.warn("ignored a control message with op {op!r}", op=message.get("op"))
            return 0
        user, connection = message.get("user"), message.get("connection")
        if not isinstance(user, str) and not isinstance(connection, str):
            return 0
        closed = self._factory.disconnect(int(message.get("code", 4403)),
                                          str(message.get("reason", "")),
                                          user=user if isinstance(user, str) else None,
                                          connection=connection if isinstance(connection, str)
                                          else None)
        if closed:
            self._log.info("disconnected {count} connections of {who} ({code}): {reason}",
                           count=closed, who=user or connection, code=message.get("code"),
                           reason=message.get("reason", ""))
        return closed
