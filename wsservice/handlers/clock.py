"""
The C{clock} subprotocol: the server time, pushed at an interval.

On open, and then every C{--clock-interval} seconds::

    {"type": "tick", "time": "2026-11-23T18:44:48.123Z", "interval": 1.0}

A client changes its own interval (0.1 to 3600 seconds) by sending::

    {"interval": 0.5}

which is acknowledged with a tick carrying the new interval, sent at once.
Anything else is answered with an error object and the connection stays
open::

    {"type": "error", "message": "interval must be a number from 0.1 to 3600"}
"""

from __future__ import annotations

import json

from twisted.internet.interfaces import IDelayedCall
from twisted.plugin import IPlugin
from zope.interface import implementer, provider

from wsservice.interfaces import IConnection, IHandler, IHandlerContext, IHandlerFactory
from wsservice.timefmt import isoUTC

MIN_INTERVAL = 0.1
MAX_INTERVAL = 3600.0


def parseInterval(payload: bytes, isBinary: bool) -> float:
    """
    Read a requested interval from a client message.

    @raise ValueError: with a message for the client when it is not one.
    """
    if isBinary:
        raise ValueError("binary messages are not understood; send {\"interval\": seconds}")
    try:
        request = json.loads(payload)
    except (ValueError, RecursionError):
        raise ValueError("not JSON; send {\"interval\": seconds}")
    interval = request.get("interval") if isinstance(request, dict) else None
    if (
        isinstance(interval, bool)
        or not isinstance(interval, (int, float))
        or not (MIN_INTERVAL <= interval <= MAX_INTERVAL)
    ):
        raise ValueError(
            f"interval must be a number from {MIN_INTERVAL:g} to {MAX_INTERVAL:g}"
        )
    return float(interval)


@provider(IPlugin, IHandlerFactory)
@implementer(IHandler)
class ClockHandler:
    """
    Ticks the server time to one client at its chosen interval.
    """

    subprotocol = "clock"
    description = "the server time (ISO 8601 UTC) pushed at an interval the client may change"

    def __init__(self, connection: IConnection, context: IHandlerContext) -> None:
        self._connection = connection
        self._context = context
        self._interval = context.settings.clockInterval
        self._next: IDelayedCall | None = None

    def _tick(self) -> None:
        self._next = self._context.callLater(self._interval, self._tick)
        now = self._context.clock.seconds()
        self._connection.sendText(
            json.dumps({"type": "tick", "time": isoUTC(now), "interval": self._interval})
        )

    def _stop(self) -> None:
        if self._next is not None and self._next.active():
            self._next.cancel()
        self._next = None

    def onOpen(self) -> None:
        self._tick()

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        try:
            interval = parseInterval(payload, isBinary)
        except ValueError as e:
            self._connection.sendText(json.dumps({"type": "error", "message": str(e)}))
            return
        self._interval = interval
        self._stop()
        self._tick()

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        self._stop()
