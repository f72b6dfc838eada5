"""
Unit tests of plugin discovery and negotiation.
"""

import pytest
from zope.interface import provider
from zope.interface.verify import verifyObject

from wsservice.handlers.chat import ChatHandler
from wsservice.handlers.clock import ClockHandler
from wsservice.handlers.echo import EchoHandler
from wsservice.interfaces import IHandlerFactory
from wsservice.registry import HandlerRegistry, PluginConflict, discoverPlugins


def test_discovery_finds_exactly_the_built_in_handlers_once():
    """
    The twisted/plugins drop-ins yield chat, clock and echo, each once.
    """
    found = discoverPlugins()
    assert sorted(p.subprotocol for p in found) == ["chat", "clock", "echo"]
    for plugin in found:
        verifyObject(IHandlerFactory, plugin)


def test_select_follows_client_order_and_default():
    """
    The first offered name with a handler wins; no offer means the default;
    nothing known means None.
    """
    registry = HandlerRegistry.fromPlugins([ChatHandler, EchoHandler, ClockHandler])
    assert registry.select(["x", "echo", "chat"], "chat") is EchoHandler
    assert registry.select([], "clock") is ClockHandler
    assert registry.select([], None) is None
    assert registry.select(["x"], "chat") is None


def test_conflicting_plugins_are_refused():
    """
    Two plugins for one subprotocol raise PluginConflict naming both.
    """

    @provider(IHandlerFactory)
    class Other(EchoHandler):
        pass

    with pytest.raises(PluginConflict, match="EchoHandler and .*Other"):
        HandlerRegistry.fromPlugins([EchoHandler, Other])
