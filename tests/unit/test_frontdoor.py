"""
L{wsservice.web.frontdoor}'s request-head deadline on a fake clock: a
connection that never completes its head is dropped at its own deadline,
one that does is left alone, and however many wait there is one reactor
timer.
"""

from __future__ import annotations

from twisted.internet.address import IPv4Address
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from wsservice.web.frontdoor import FrontDoorFactory

HEAD = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"


def door(factory: FrontDoorFactory, port: int):
    protocol = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", port))
    transport = StringTransport()
    protocol.makeConnection(transport)
    return protocol, transport


def frontDoor(clock: Clock, timeout: float = 10) -> FrontDoorFactory:
    return FrontDoorFactory(Factory.forProtocol(Protocol), Factory.forProtocol(Protocol),
                            clock, timeout)


def test_each_connection_is_dropped_at_its_own_deadline_on_one_timer():
    """
    Connections arriving at 0 s and 5 s without a head are dropped at 10 s
    and 15 s, with one DelayedCall pending at any time.
    """
    clock = Clock()
    factory = frontDoor(clock)
    _, early = door(factory, 1)
    clock.advance(5)
    _, late = door(factory, 2)
    assert len(clock.getDelayedCalls()) == 1
    clock.advance(4.9)
    assert not early.disconnecting
    clock.advance(0.1)
    assert early.disconnecting and not late.disconnecting
    assert len(clock.getDelayedCalls()) == 1
    clock.advance(5)
    assert late.disconnecting
    assert clock.getDelayedCalls() == []


def test_a_connection_that_sends_its_head_or_leaves_is_not_timed_out():
    """
    A complete head, or a connection lost first, ends the deadline; with
    nothing left waiting, the timer finds nothing to do and is not set
    again.
    """
    clock = Clock()
    factory = frontDoor(clock)
    served, servedTransport = door(factory, 1)
    gone, goneTransport = door(factory, 2)
    served.dataReceived(HEAD)
    gone.connectionLost()
    clock.advance(11)
    assert not servedTransport.disconnecting and not goneTransport.disconnecting
    assert clock.getDelayedCalls() == []


def test_many_silent_connections_expire_together():
    """
    A thousand connections that arrived in the same instant are all dropped
    at the deadline, by one timer.
    """
    clock = Clock()
    factory = frontDoor(clock)
    transports = [door(factory, port)[1] for port in range(1000)]
    assert len(clock.getDelayedCalls()) == 1
    clock.advance(10)
    assert all(t.disconnecting for t in transports)
    assert clock.getDelayedCalls() == []


def test_no_deadline_when_the_timeout_is_off():
    """
    C{--open-handshake-timeout 0} waits for a head forever.
    """
    clock = Clock()
    _, transport = door(frontDoor(clock, timeout=0), 1)
    clock.advance(1000)
    assert not transport.disconnecting and clock.getDelayedCalls() == []


def test_stopping_the_listener_cancels_the_timer():
    """
    A listener that stops leaves no timer behind for connections it no
    longer has.
    """
    clock = Clock()
    factory = frontDoor(clock)
    door(factory, 1)
    factory.doStop()
    assert clock.getDelayedCalls() == []
