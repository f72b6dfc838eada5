"""
The service tree in the test's own reactor (pytest-twisted), with Autobahn's
Twisted client over a real loopback socket.
"""

from __future__ import annotations

from pathlib import Path

import pytest_twisted
from autobahn.twisted.websocket import WebSocketClientFactory, WebSocketClientProtocol
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.endpoints import TCP4ClientEndpoint

from tests.support.inprocess import startInProcess
from tests.support.processes import REPO
from wsservice.config import ServiceConfig


class RecordingClient(WebSocketClientProtocol):
    """
    Records messages and fires C{factory.opened} / C{factory.closed}.
    """

    def onOpen(self) -> None:
        self.factory.opened.callback(self)

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        self.factory.messages.append(payload)
        waiting, self.factory.nextMessage = self.factory.nextMessage, Deferred()
        waiting.callback(payload)

    def onClose(self, wasClean: bool, code: int, reason: str) -> None:
        self.factory.closed.callback((code, reason))


def clientFactory(url: str, protocols: list[str]) -> WebSocketClientFactory:
    factory = WebSocketClientFactory(url, protocols=protocols)
    factory.protocol = RecordingClient
    factory.opened, factory.closed, factory.nextMessage = Deferred(), Deferred(), Deferred()
    factory.messages = []
    return factory


def startService(config: ServiceConfig):
    """
    Start the service tree in this reactor; fire with it and its port once
    it listens.
    """
    from twisted.internet import reactor

    return startInProcess(config, reactor)


@inlineCallbacks
def connect(port, path: str, protocols: list[str]):
    """
    Open a WebSocket to C{path}; fire with the client and its factory.
    """
    from twisted.internet import reactor

    number = port.getHost().port
    factory = clientFactory(f"ws://127.0.0.1:{number}{path}", protocols)
    yield TCP4ClientEndpoint(reactor, "127.0.0.1", number).connect(factory)
    client = yield factory.opened
    return client, factory


@pytest_twisted.inlineCallbacks
def test_stopping_the_service_closes_clients_with_1001():
    """
    Stopping the service tree sends open clients 1001 before it stops the
    listeners, and stopService's Deferred fires once they have closed.
    """
    config = ServiceConfig(listen=("tcp:0:interface=127.0.0.1",), staticDir=Path(REPO, "static"))
    service, port = yield startService(config)
    client, factory = yield connect(port, "/", ["echo"])
    client.sendMessage(b"in process")
    echoed = yield factory.nextMessage
    assert echoed == b"in process"
    stopped = service.stopService()
    code, reason = yield factory.closed
    yield stopped
    assert (code, reason) == (1001, "server shutting down")
    assert not port.connected


@pytest_twisted.inlineCallbacks
def test_open_connections_keep_nagle_off_and_no_handshake_leftovers():
    """
    An accepted WebSocket has TCP_NODELAY set, and once open its protocol no
    longer holds the opening handshake or the per-connection copies of the
    protocol options that Autobahn would otherwise keep for its whole life;
    it still works afterwards, closing handshake included.
    """
    import socket

    config = ServiceConfig(listen=("tcp:0:interface=127.0.0.1",), staticDir=Path(REPO, "static"))
    service, port = yield startService(config)
    client, factory = yield connect(port, "/room?name=ada", ["chat"])
    welcome = yield factory.nextMessage
    assert b'"you":"ada"' in welcome
    joined = yield factory.nextMessage
    assert b'"type":"presence"' in joined
    (server,) = service.factory.openProtocols
    sock = server.transport.getHandle()
    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
    kept = set(vars(server))
    assert not kept & {"http_request_data", "http_response_data", "http_headers", "send_queue"}
    assert not kept & set(server.CONFIG_ATTRS)
    assert server.maxMessagePayloadSize == config.limits.maxMessageSize
    client.sendMessage(b'{"message": "still here"}')
    relayed = yield factory.nextMessage
    assert b'"still here"' in relayed
    client.sendClose(1000)
    code, _ = yield factory.closed
    assert code == 1000
    yield service.stopService()
