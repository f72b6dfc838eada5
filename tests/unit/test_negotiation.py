"""
The opening handshake's decisions (L{negotiate}) and the options the
factory gives Autobahn (L{protocolOptions}), without a connection.
"""

from __future__ import annotations

import pytest

from wsservice.config import HandlerSettings, Limits, ProtocolSettings
from wsservice.handlers.chat import ChatHandler
from wsservice.handlers.clock import ClockHandler
from wsservice.handlers.echo import EchoHandler
from wsservice.registry import HandlerRegistry
from wsservice.websocket.factory import acceptDeflate, protocolOptions, refuseExtensions
from wsservice.websocket.negotiation import Refusal, negotiate

REGISTRY = HandlerRegistry.fromPlugins([ChatHandler, ClockHandler, EchoHandler])


def settings(**limits) -> ProtocolSettings:
    return ProtocolSettings(Limits(**limits), HandlerSettings(), "chat",
                            allowedOrigins=("https://*.example.com",))


def decide(offered=(), host="h:1", origin=None, openCount=0, draining=False, **limits):
    return negotiate(list(offered), host, origin, settings(**limits), REGISTRY, openCount, draining)


def test_the_clients_first_known_subprotocol_wins_and_none_means_the_default():
    """
    Offers are walked in the client's order; no offer gets the default.
    """
    assert decide(["mqtt", "echo", "chat"]) is EchoHandler
    assert decide() is ChatHandler


@pytest.mark.parametrize("kw, code, label, words", [
    (dict(offered=["mqtt"]), 400, "subprotocol", "unsupported subprotocol mqtt; supported: chat, clock, echo"),
    (dict(origin="https://evil.example.org"), 403, "origin", "origin https://evil.example.org is not allowed"),
    (dict(openCount=5, maxConnections=5), 503, "max-connections", "too many connections"),
    (dict(draining=True), 503, "shutting-down", "server is shutting down"),
])
def test_refusals_say_why(kw, code, label, words):
    """
    Each refusal has its HTTP status, its metric label and a reason naming
    what was wrong.
    """
    assert decide(**kw) == Refusal(code, words, label)


def test_allowed_origins_and_unlimited_connections():
    """
    A matching origin pattern is admitted, and maxConnections 0 is no limit.
    """
    assert decide(origin="https://app.example.com") is ChatHandler
    assert decide(openCount=10**6, maxConnections=0) is ChatHandler


def test_every_autobahn_option_is_set_from_the_settings():
    """
    The options hold the limits, never Autobahn's defaults of unlimited
    sizes, dropping TCP on errors and no keepalive.
    """
    options = protocolOptions(settings(maxMessageSize=1000, pingInterval=0, pingTimeout=7))
    assert options["maxFramePayloadSize"] == options["maxMessagePayloadSize"] == 1000
    assert options["failByDrop"] is False and options["utf8validateIncoming"] is True
    assert (options["autoPingInterval"], options["autoPingTimeout"]) == (0, 0)
    assert options["perMessageCompressionAccept"] is refuseExtensions
    deflate = ProtocolSettings(Limits(), HandlerSettings(), None, perMessageDeflate=True)
    assert protocolOptions(deflate)["perMessageCompressionAccept"] is acceptDeflate
    assert protocolOptions(settings(pingInterval=30, pingTimeout=7))["autoPingTimeout"] == 7
