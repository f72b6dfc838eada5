"""
Unit tests of the pieces of the WebSocket layer that decide alone.
"""

from wsservice.websocket.limits import RateGate
from wsservice.websocket.negotiation import originAllowed


def test_origin_policy():
    """
    No Origin and same-origin pages are allowed; others only by pattern.
    """
    assert originAllowed(None, "127.0.0.1:60000", ())
    assert originAllowed("http://127.0.0.1:60000", "127.0.0.1:60000", ())
    assert not originAllowed("http://evil.example", "127.0.0.1:60000", ())
    assert originAllowed("https://app.example.com", "h:1", ("https://*.example.com",))
    assert not originAllowed("https://example.com.evil", "h:1", ("https://*.example.com",))
    assert not originAllowed("null", "h:1", ())


def test_rate_gate_allows_bursts_then_holds_at_the_rate():
    """
    A gate lets its burst through at once, then holds messages in order and
    releases them at its rate.
    """
    gate = RateGate(rate=10, burst=20, grace=5, now=0)
    assert all(gate.admit(b"m", False, 0) for _ in range(20))
    assert not gate.admit(b"a", False, 0) and not gate.admit(b"b", True, 0)
    assert gate.holding == 2 and gate.wait(0) == 0.1
    assert gate.release(0.05) == []
    assert gate.release(0.1) == [(b"a", False)]
    assert not gate.admit(b"c", False, 0.1)  # behind what waits, even with a token
    assert gate.release(0.35) == [(b"b", True), (b"c", False)] and gate.holding == 0
    assert gate.admit(b"d", False, 0.5)


def test_rate_gate_says_when_a_client_stayed_over_its_grace():
    """
    A client whose messages keep waiting for the grace period on end is
    over the limit; one whose burst drains in time is not.
    """
    gate = RateGate(rate=10, burst=10, grace=2, now=0)
    for n in range(40):
        gate.admit(b"x", False, 0)
    gate.release(1.0)
    assert gate.holding and not gate.expired(1.0)
    assert gate.expired(2.0)
    calm = RateGate(rate=10, burst=10, grace=2, now=0)
    for n in range(15):
        calm.admit(b"x", False, 0)
    calm.release(1.0)
    assert not calm.holding and not calm.expired(3.0)


def test_autobahn_debug_formatting_is_lazy_and_unchanged():
    """
    After deferDebugFormatting, Autobahn's pformat, hltype and hlval build
    their text only when formatted, and the text is what the originals give.
    """
    from pprint import pformat

    from autobahn.websocket import protocol

    from wsservice.websocket._autobahn import deferDebugFormatting

    deferDebugFormatting()
    deferDebugFormatting()
    value = [("maxMessagePayloadSize", 1024, "ServiceFactory")] * 3
    lazy = protocol.pformat(value)
    assert str(lazy) == pformat(value) == f"{lazy}"

    from autobahn import util
    from autobahn.twisted import websocket

    for module in (protocol, websocket):
        assert str(module.hltype(deferDebugFormatting)) == util.hltype(deferDebugFormatting)
        assert f"{module.hlval(42)}" == util.hlval(42)


def test_fan_out_policy_coalesces_only_while_messages_pile_up():
    """
    Fan-outs go out at once until connections get several messages per turn
    for a while; one busy turn does not switch that, and quiet turns switch
    it back.
    """
    from wsservice.websocket.writes import FanOutPolicy

    def turn(policy, connections, messagesEach):
        policy.repeats = connections * (messagesEach - 1)
        policy.endTurn(connections)
        return policy.coalescing

    policy = FanOutPolicy()
    assert not policy.coalescing
    assert not turn(policy, 1000, 2)
    assert not turn(policy, 1000, 1)
    busy = [turn(policy, 1000, 5) for _ in range(3)]
    assert busy[-1]
    assert turn(policy, 5000, 1)
    quiet = [turn(policy, 1000, 1) for _ in range(30)]
    assert not quiet[-1]
    assert not turn(policy, 0, 0)


def test_a_close_reason_is_cut_between_characters():
    """
    A reason over 123 bytes of UTF-8 is cut to fit a close frame, never in
    the middle of a character (a client would fail the connection as
    invalid UTF-8).
    """
    from wsservice.websocket._autobahn import closeReason

    cut = closeReason("é" * 100)
    assert len(cut) == 122 and cut.decode("utf-8") == "é" * 61
    assert closeReason("short") == b"short"
