"""
The test doubles plugin authors get (L{wsservice.testing}): they provide the
interfaces they stand in for, and the README's ten-line test of the example
C{shout} plugin passes with them.
"""

from __future__ import annotations

import importlib.util

from zope.interface.verify import verifyObject

from tests.support.processes import REPO
from wsservice.interfaces import IConnection, IHandlerContext, IRoomMember
from wsservice.testing import FakeConnection, FakeContext


def loadShout():
    path = REPO / "examples" / "twisted" / "plugins" / "shout.py"
    spec = importlib.util.spec_from_file_location("shout_example", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.ShoutHandler


def test_the_doubles_provide_their_interfaces():
    """
    FakeConnection is an IConnection and an IRoomMember; FakeContext an
    IHandlerContext.
    """
    verifyObject(IConnection, FakeConnection())
    verifyObject(IRoomMember, FakeConnection())
    verifyObject(IHandlerContext, FakeContext())


def test_shout_reaches_everyone_on_the_path_upper_cased():
    """
    The README's example: two people on /yard, one shouts, both hear it
    upper-cased; binary is refused with 1003; the idle nudge follows the
    context's clock.
    """
    ShoutHandler = loadShout()
    context = FakeContext()
    alice, bob = FakeConnection("/yard"), FakeConnection("/yard", idle="5")
    shouter = ShoutHandler(alice, context)
    shouter.onOpen()
    ShoutHandler(bob, context).onOpen()
    shouter.onMessage(b"hi", False)
    assert bob.events()[-1]["message"] == "HI"
    assert alice.events()[-1]["message"] == "HI"
    context.clock.advance(5)
    assert bob.events()[-1]["type"] == "idle"
    shouter.onMessage(b"\x00", True)
    assert alice.closed == (1003, "shout takes text only")
