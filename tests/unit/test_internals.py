"""
The Autobahn and Twisted names outside their public APIs that wsservice
relies on (listed in C{wsservice/websocket/_autobahn.py} and
C{_twisted.py}) are still there in the installed versions.  Each failure
names the attribute, so an upgrade that renames one fails here, loudly,
instead of silently falling back to a class default.
"""

from __future__ import annotations

import socket

import pytest
from twisted.internet import tcp
from twisted.internet.protocol import Protocol
from twisted.internet.testing import MemoryReactor, StringTransport

from wsservice.websocket import _autobahn, _twisted
from wsservice.websocket.factory import ServiceFactory


@pytest.mark.parametrize("owner, name, why", _autobahn.RELIED_ON,
                         ids=[name for _, name, _ in _autobahn.RELIED_ON])
def test_autobahn_still_has_each_name_we_rely_on(owner, name, why):
    """
    Every Autobahn class attribute in _autobahn.RELIED_ON exists.
    """
    assert hasattr(owner, name), f"Autobahn's {owner.__name__} has no {name!r} ({why})"


def test_prepared_messages_still_carry_the_frame():
    """
    A PreparedMessage still has the attributes the fan-out reads.
    """
    message = _autobahn.prepareMessage(b"hi", False)
    missing = [n for n in _autobahn.PREPARED_MESSAGE if not hasattr(message, n)]
    assert not missing, f"PreparedMessage lost {missing}"
    assert message.payloadHybi == b"\x81\x02hi"


@pytest.mark.parametrize("module, name", _autobahn.EAGER_FORMATTING,
                         ids=[f"{m}.{n}" for m, n in _autobahn.EAGER_FORMATTING])
def test_autobahn_still_formats_debug_lines_with_module_level_functions(module, name):
    """
    The Autobahn modules whose debug formatting is made lazy still call
    module-level pformat, hltype and hlval.
    """
    import importlib

    assert hasattr(importlib.import_module(module), name), f"{module} has no {name}"


def test_autobahn_factories_still_time_connections_out_through_batched_timer():
    """
    Autobahn's server factory still has the C{_batched_timer} its
    connections' timeouts go through, which L{_autobahn.useTimer} replaces.
    """
    from autobahn.twisted.websocket import WebSocketServerFactory
    from twisted.internet.task import Clock

    from wsservice.websocket.timers import BucketTimer

    factory = WebSocketServerFactory()
    assert hasattr(factory, "_batched_timer"), "WebSocketServerFactory has no '_batched_timer'"
    assert callable(factory._batched_timer.call_later), "its _batched_timer has no call_later"
    timer = BucketTimer(Clock())
    _autobahn.useTimer(factory, timer)
    assert factory._batched_timer is timer


def openedConnection() -> tuple[object, dict]:
    """
    A ServiceProtocol through a whole opening handshake, and its instance
    state just before it dropped what it does not need.
    """
    from wsservice.config import HandlerSettings, Limits, ProtocolSettings
    from wsservice.handlers.echo import EchoHandler
    from wsservice.metrics import ServiceMetrics
    from wsservice.registry import HandlerRegistry
    from wsservice.testing import FakeContext

    context = FakeContext()
    settings = ProtocolSettings(Limits(openHandshakeTimeout=0, pingInterval=0),
                                HandlerSettings(), "echo")
    factory = ServiceFactory(HandlerRegistry.fromPlugins([EchoHandler]), context.rooms,
                             settings, ServiceMetrics(), context.clock)
    proto = factory.buildProtocol(None)
    proto.makeConnection(StringTransport())
    state: dict = {}
    drop = proto.dropHandshakeState
    proto.dropHandshakeState = lambda: (state.update(vars(proto)), drop())
    proto.dataReceived(
        b"GET /r HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    assert state, "the handshake did not open the connection"
    return proto, state


def test_autobahn_still_leaves_the_state_we_compact():
    """
    An open Autobahn connection still holds every name in INITIAL_STATE, at
    the value our class default holds, every name in HANDSHAKE_STATE, and
    the other attributes we read.
    """
    proto, state = openedConnection()
    missing = [n for n in (*_autobahn.INITIAL_STATE, *_autobahn.HANDSHAKE_STATE)
               if n not in state]
    assert not missing, f"Autobahn no longer sets {missing} on an open connection"
    changed = [n for n in _autobahn.INITIAL_STATE
               if state[n] != getattr(_autobahn.ServerProtocolBase, n)]
    assert not changed, f"Autobahn's initial value of {changed} changed"
    absent = [n for n in _autobahn.CONNECTION_STATE if not hasattr(proto, n)]
    assert not absent, f"an open Autobahn connection has no {absent}"


def test_an_open_connection_keeps_no_handshake_or_initial_state():
    """
    Once open, the instance holds none of the handshake, none of the
    attributes still at their initial value and none of the protocol
    options: reads fall back to the class.
    """
    proto, _ = openedConnection()
    kept = set(vars(proto))
    assert not kept & set(_autobahn.HANDSHAKE_STATE)
    assert not kept & {n for n in _autobahn.INITIAL_STATE}
    assert not kept & set(proto.CONFIG_ATTRS)
    assert "send_queue" not in kept and "_factoryChoice" not in kept
    assert proto.isOpen() and proto.maxMessagePayloadSize == 1024 * 1024


def test_twisted_tcp_transports_still_have_each_name_we_rely_on():
    """
    A plain TCP transport (tcp.Connection) has every attribute in
    _twisted.RELIED_ON.
    """
    a, b = socket.socketpair()
    try:
        transport = tcp.Connection(a, Protocol(), MemoryReactor())
        missing = [f"{name} ({why})" for name, why in _twisted.RELIED_ON
                   if not hasattr(transport, name)]
        assert not missing, f"Twisted's tcp.Connection has no {missing}"
        assert _twisted.writesDirectly(transport)
        assert not _twisted.writesDirectly(StringTransport())
    finally:
        a.close()
        b.close()


def test_direct_writes_go_to_the_socket_and_the_rest_to_the_transport():
    """
    writeDirectly sends on the socket while the transport holds nothing, and
    hands over what the socket did not take.
    """
    a, b = socket.socketpair()
    try:
        transport = tcp.Connection(a, Protocol(), MemoryReactor())
        transport.connected = True
        _twisted.writeDirectly(transport, b"hello")
        assert b.recv(10) == b"hello"
        transport.write(b"queued")
        _twisted.writeDirectly(transport, b" after")
        assert b"".join(transport._tempDataBuffer) == b"queued after"
    finally:
        a.close()
        b.close()


@pytest.mark.parametrize("name, why", _twisted.REQUEST_RELIED_ON,
                         ids=[name for name, _ in _twisted.REQUEST_RELIED_ON])
def test_twisted_web_requests_still_have_the_body_hooks(name, why):
    """
    twisted.web's Request still has each method boundedRequests overrides,
    and its channel still calls them: a body over the bound gets 413.
    """
    from twisted.internet.testing import StringTransport
    from twisted.web.http import Request as HTTPRequest
    from twisted.web.resource import Resource
    from twisted.web.server import Site

    assert hasattr(HTTPRequest, name), f"twisted.web.http.Request has no {name!r} ({why})"
    site = Site(Resource())
    site.requestFactory = _twisted.boundedRequests(10)
    channel = site.buildProtocol(None)
    transport = StringTransport()
    channel.makeConnection(transport)
    channel.dataReceived(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                         b"8\r\n12345678\r\n8\r\n12345678\r\n0\r\n\r\n")
    assert transport.value().startswith(b"HTTP/1.1 413 "), transport.value()
    assert transport.producerState == "paused"
