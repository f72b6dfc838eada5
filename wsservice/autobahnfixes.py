"""
A performance fix for Autobahn that changes nothing it does.

Autobahn's C{WebSocketProtocol._connectionMade} pretty-prints every protocol
option (C{pprint.pformat}) for a debug log line on every connection, whether
debug logging is on or not: a quarter of the CPU a handshake costs here.
L{deferDebugFormatting} makes that formatting lazy: the text is built only
if the debug line is actually emitted.  Worth an upstream issue.
"""

from __future__ import annotations

from pprint import pformat
from typing import Any


class _LazyPformat:
    """
    Stands in for C{pprint.pformat}: returns a value that is pretty-printed
    only when a log observer formats it.
    """

    def __call__(self, value: Any, *a: Any, **kw: Any) -> "_Deferred":
        return _Deferred(value, a, kw)


class _Deferred:
    __slots__ = ("_value", "_a", "_kw")

    def __init__(self, value: Any, a: tuple, kw: dict) -> None:
        self._value, self._a, self._kw = value, a, kw

    def __str__(self) -> str:
        return pformat(self._value, *self._a, **self._kw)

    __repr__ = __str__

    def __format__(self, spec: str) -> str:
        return format(str(self), spec)


def deferDebugFormatting() -> None:
    """
    Make Autobahn's per-connection debug formatting lazy; idempotent.
    """
    from autobahn.websocket import protocol

    if not isinstance(protocol.pformat, _LazyPformat):
        protocol.pformat = _LazyPformat()
