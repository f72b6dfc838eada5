"""
Property-based tests: random frames, random bytes and random JSON thrown at
each built-in handler over real sockets.  The service stays up and a
bystander in the same room is unaffected.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.rawws import RawClient, frame
from tests.support.processes import ServiceProcess
from tests.support.wsclient import open_, recvUntil

HANDLERS = ["chat", "echo", "clock"]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=50),
    lambda children: st.lists(children, max_size=5)
    | st.dictionaries(st.sampled_from(["name", "message", "type", "interval", "x"]) | st.text(max_size=8),
                      children, max_size=5),
    max_leaves=20,
)
frames = st.builds(
    frame,
    opcode=st.sampled_from([0x0, 0x1, 0x2, 0x3, 0x8, 0x9, 0xA, 0xB]),
    payload=st.binary(max_size=300),
    fin=st.booleans(),
    mask=st.booleans() | st.just(True),
    rsv=st.integers(0, 7) | st.just(0),
)
attacks = st.one_of(
    st.lists(frames, min_size=1, max_size=5).map(b"".join),
    st.binary(min_size=1, max_size=400),
    json_values.map(lambda v: frame(0x1, json.dumps(v).encode())),
    st.text(max_size=200).map(lambda t: frame(0x1, t.encode("utf-8", "surrogatepass"))),
)


SERVICE_ARGS = ("--max-message-size", "4096", "--max-messages-per-second", "0")


@pytest.mark.parametrize("subprotocol", HANDLERS)
def test_garbage_never_hurts_the_service_or_a_bystander(service, subprotocol):
    """
    Whatever bytes a client sends, the service keeps serving another client
    in the same room and answers a clean one.
    """
    # @given runs inside the test: pytest-twisted's call hook cannot take a
    # hypothesis-wrapped test function.
    @settings(max_examples=40, deadline=None, database=None)
    @given(attack=attacks)
    def throw(attack: bytes) -> None:
        attackWith(service, subprotocol, attack)

    throw()
    assert "Unhandled" not in service.log()


def attackWith(service: ServiceProcess, subprotocol: str, attack: bytes) -> None:
    with open_(service.url("/garbage"), "chat") as bystander:
        recvUntil(bystander, "welcome")
        with RawClient(service.port, "/garbage", subprotocol) as attacker:
            assert attacker.status == 101
            try:
                attacker.send(attack)
            except OSError:
                pass
        bystander.send(json.dumps({"message": "still here"}))
        while recvUntil(bystander, "message")["message"] != "still here":
            pass
    with open_(service.url(), "echo") as probe:
        probe.send("alive")
        assert probe.recv(timeout=10) == "alive"
    assert service.proc.poll() is None
