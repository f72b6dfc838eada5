"""
Who a connection is: what an authenticator returns, and how it refuses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from types import MappingProxyType
from typing import Any, Mapping, Sequence


@dataclass(frozen=True)
class Identity:
    """
    A verified identity.

    @ivar user: the user's id (a token's C{sub}): several connections of one
        user are one member of a room.
    @ivar name: the display name people see; nobody can pass for someone
        else, since it comes from the token, not the client.
    @ivar rooms: the rooms this identity may open (C{*} wildcards), or
        C{None} for every room.
    @ivar expires: when the identity expires (POSIX seconds), or C{None}.
    @ivar info: public information about the user that other members see
        (for example an avatar URL).
    """

    user: str
    name: str
    rooms: Sequence[str] | None = None
    expires: float | None = None
    info: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    def allows(self, room: str) -> bool:
        """
        Whether this identity may open C{room}.
        """
        return self.rooms is None or any(fnmatchcase(room, pattern) for pattern in self.rooms)


class AuthRefused(Exception):
    """
    A handshake (or a refresh) is refused: C{code} is the HTTP status (401
    without valid credentials, 403 when they do not allow it, 503 when they
    could not be checked), C{reason} what the client is told.
    """

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(code, reason)
        self.code = code
        self.reason = reason
