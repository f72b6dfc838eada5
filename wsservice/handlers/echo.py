"""
The C{echo} subprotocol: every message comes back unchanged, text as text
and binary as binary, and nothing else is ever sent.  Conformance suites
(the Autobahn Testsuite) run against it.

    client -> server   text   hello
    server -> client   text   hello
    client -> server   binary 00 01 02 ff
    server -> client   binary 00 01 02 ff
"""

from __future__ import annotations

from twisted.plugin import IPlugin
from zope.interface import implementer, provider

from wsservice.interfaces import IConnection, IHandler, IHandlerContext, IHandlerFactory


@provider(IPlugin, IHandlerFactory)
@implementer(IHandler)
class EchoHandler:
    """
    Sends each message back to its sender.
    """

    subprotocol = "echo"
    description = "every message back to its sender, text as text and binary as binary"

    def __init__(self, connection: IConnection, context: IHandlerContext) -> None:
        self._connection = connection

    def onOpen(self) -> None:
        pass

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        if isBinary:
            self._connection.sendBinary(payload)
        else:
            self._connection.sendText(payload.decode("utf-8"))

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        pass
