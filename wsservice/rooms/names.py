"""
Room names, as the path of a request names them: C{/kitchen} is room
C{kitchen}, C{/} the default room.  Shared by the chat handler and the
handshake, which checks an identity's room grants before the upgrade.
"""

from __future__ import annotations

from urllib.parse import unquote

DEFAULT_ROOM = "lobby"
MAX_ROOM_LENGTH = 64


def roomFromPath(path: str) -> str:
    """
    The room a request path names: C{/kitchen} is C{kitchen}, C{/} is
    L{DEFAULT_ROOM}.
    """
    room = unquote(path).strip("/")
    return room or DEFAULT_ROOM
