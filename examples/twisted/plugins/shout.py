"""
An example wsservice handler plugin: the C{shout} subprotocol.

Every text message is upper-cased and shouted to everyone connected to the
same URL path, as JSON; a client that stays quiet for C{idle} seconds
(C{?idle=30} in the URL, default 60) is told so once.

To serve it, put this file in a directory C{twisted/plugins/} on the Python
path (no C{__init__.py} in C{twisted/} or C{twisted/plugins/}) and restart
the service:

    mkdir -p ~/wsplugins/twisted/plugins
    cp shout.py ~/wsplugins/twisted/plugins/
    PYTHONPATH=~/wsplugins twistd -n wsservice --list-handlers
"""

from __future__ import annotations

from twisted.plugin import IPlugin
from zope.interface import implementer, provider

from wsservice.interfaces import IConnection, IHandler, IHandlerContext, IHandlerFactory


@provider(IPlugin, IHandlerFactory)
@implementer(IHandler)
class ShoutHandler:
    """
    Upper-cases each text message and relays it to the room.
    """

    subprotocol = "shout"
    description = "text messages upper-cased and relayed to everyone on the same path"

    def __init__(self, connection: IConnection, context: IHandlerContext) -> None:
        self.connection = connection
        self.context = context
        self.room = "shout:" + connection.request.path
        try:
            self.idle = min(3600.0, max(1.0, float(connection.request.query.get("idle", ["60"])[0])))
        except ValueError:
            self.idle = 60.0
        self.nudge = None

    def onOpen(self) -> None:
        self.context.rooms.join(self.room, self.connection, {"id": self.connection.id})
        self.nudge = self.context.callLater(self.idle, self.sayIdle)

    def sayIdle(self) -> None:
        self.connection.sendText('{"type": "idle", "message": "still there?"}')

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        if isBinary:
            self.connection.close(1003, "shout takes text only")
            return
        if self.nudge is not None and self.nudge.active():
            self.nudge.reset(self.idle)
        text = payload.decode("utf-8")
        self.context.rooms.publish(
            self.room, {"type": "shout", "from": self.connection.id, "message": text.upper()}
        )

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        if self.nudge is not None and self.nudge.active():
            self.nudge.cancel()
        self.context.rooms.leave(self.room, self.connection)
