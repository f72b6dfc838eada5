"""
Fuzz target: the front door (L{FrontDoorFactory}, L{FrontDoor}) reading a
request head that arrives in pieces, on a L{StringTransport} with a
L{Clock}; the C{web} and C{websocket} factories only record what they get.

The property: no exception; while undecided it holds at most
L{MAX_HEAD} bytes; it decides exactly once, as soon as the head is
complete or too long, and the same way however the bytes were cut: a head
that fits goes to C{websocket} when it asks for the upgrade and to C{web}
otherwise, a head longer than L{MAX_HEAD} is answered with 431 by the door
itself; the protocol it chose gets every byte once, in order; its deadline
ends once it decided (the factory's one timer then finds nothing to drop and
is not set again), and drops the connection if it never does.

Input: byte 0 is flags (see L{FLAGS}), byte 1 seeds the chunk sizes,
bytes 2-3 are the length of an C{X-Pad} header inserted after the first
line (so heads near and over the bound are cheap to reach), the rest is
what the client sends.

    PYTHONPATH=. python tests/fuzz/fuzz_frontdoor.py CORPUS SEEDS -max_total_time=60
"""

from __future__ import annotations

import random

from tests.fuzz import harness

with harness.instrumented():
    from twisted.internet.address import IPv4Address
    from twisted.internet.error import ConnectionDone
    from twisted.internet.protocol import Factory, Protocol
    from twisted.internet.task import Clock
    from twisted.internet.testing import StringTransport
    from twisted.python.failure import Failure

    from wsservice.web.frontdoor import _UPGRADE, MAX_HEAD, FrontDoorFactory

FLAGS = {
    1: "the transport lets the front door hand reads over (plain TCP; else TLS-like)",
    2: "the web factory refuses (buildProtocol returns None)",
    4: "the websocket factory refuses",
    8: "no request-head timeout",
}
CHUNKS = [1, 2, 3, 5, 8, 64, 1000, 4096, MAX_HEAD - 1, MAX_HEAD, MAX_HEAD + 1, 65536]
MAX_PAD = 40_000
TIMEOUT = 10.0


class Recorder(Protocol):
    """
    The protocol a factory built: what it received, and how often it was
    told the connection is lost.
    """

    def __init__(self) -> None:
        self.received: list[bytes] = []
        self.lost = 0

    def dataReceived(self, data: bytes) -> None:
        self.received.append(data)

    def connectionLost(self, reason: Failure = Failure(ConnectionDone())) -> None:
        self.lost += 1


class RecordingFactory(Factory):
    """
    Builds L{Recorder}s, or refuses (C{None}), and keeps what it built.
    """

    def __init__(self, refuses: bool) -> None:
        self.refuses = refuses
        self.built: list[Recorder | None] = []

    def buildProtocol(self, addr):
        protocol = None if self.refuses else Recorder()
        self.built.append(protocol)
        return protocol


class TCPTransport(StringTransport):
    """
    A transport that, like C{tcp.Connection}, calls C{protocol} with what
    it reads.
    """

    protocol: Protocol


def padded(data: bytes, pad: int) -> bytes:
    """
    C{data} with an C{X-Pad} header of C{pad} bytes after its first line.
    """
    if not pad:
        return data
    line = b"X-Pad: " + b"a" * pad + b"\r\n"
    at = data.find(b"\r\n")
    return data + line if at < 0 else data[:at + 2] + line + data[at + 2:]


def parse(data: bytes) -> tuple[int, list[int], bytes]:
    """
    The flags, the chunk sizes and the bytes an input stands for.
    """
    flags = data[0] if data else 0
    rng = random.Random(data[1] if len(data) > 1 else 0)
    pad = min(int.from_bytes(data[2:4], "big"), MAX_PAD)
    body = padded(data[4:], pad)
    sizes, total = [], 0
    while total < len(body):
        sizes.append(rng.choice(CHUNKS))
        total += sizes[-1]
    return flags, sizes, body


def expectedRoute(body: bytes) -> str:
    """
    Where the head of C{body} goes: refused with 431 when it is longer than
    L{MAX_HEAD}, else by its upgrade header.
    """
    end = body.find(b"\r\n\r\n")
    if end < 0 or end > MAX_HEAD:
        return "refused"
    return "websocket" if _UPGRADE.search(body[:end]) else "web"


def testOneInput(data: bytes) -> None:
    flags, sizes, body = parse(data)
    clock = Clock()
    web, websocket = RecordingFactory(bool(flags & 2)), RecordingFactory(bool(flags & 4))
    factory = FrontDoorFactory(web, websocket, clock, 0 if flags & 8 else TIMEOUT)
    door = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 1))
    transport = TCPTransport() if flags & 1 else StringTransport()
    if flags & 1:
        transport.protocol = door
    door.makeConnection(transport)
    at = 0
    for size in sizes:
        if transport.disconnecting:
            break  # a transport stops reading once it is told to close
        chunk = body[at:at + size]
        at += len(chunk)
        (transport.protocol if flags & 1 else door).dataReceived(chunk)
        refused = transport.value().startswith(b"HTTP/1.1 431 ")
        decisions = len(web.built) + len(websocket.built) + refused
        assert decisions <= 1, f"{decisions} hand-over decisions"
        if not decisions:
            assert len(door._buffer) < MAX_HEAD + 4, f"{len(door._buffer)} bytes buffered"
            assert len(clock.getDelayedCalls()) == (0 if flags & 8 else 1)
    taken = body[:at]
    refused = transport.value().startswith(b"HTTP/1.1 431 ")
    decided = web.built or websocket.built or refused
    end = body.find(b"\r\n\r\n")
    assert bool(decided) == (0 <= end <= MAX_HEAD or len(body) >= MAX_HEAD + 4), (
        f"decided {bool(decided)} on {len(body)} bytes, terminator at {end}")
    if refused:
        assert expectedRoute(body) == "refused", f"a head of {end} bytes was refused"
        assert transport.disconnecting and not (web.built or websocket.built)
        inner = None
    elif decided:
        route = "web" if web.built else "websocket"
        assert route == expectedRoute(body), (
            f"a head of {end if end >= 0 else '>' + str(len(body))} bytes went to {route}, "
            f"not {expectedRoute(body)} (MAX_HEAD {MAX_HEAD})")
        inner = (web.built or websocket.built)[0]
        dropping = transport.disconnecting
        clock.advance(TIMEOUT)
        assert transport.disconnecting == dropping, "the deadline outlived the decision"
        assert not clock.getDelayedCalls(), "the timer was set again for nobody"
        if inner is None:
            assert transport.disconnecting, "refused but not disconnected"
        else:
            assert b"".join(inner.received) == taken, "bytes lost, repeated or reordered"
            assert inner.transport is transport
            if flags & 1:
                assert transport.protocol is inner, "reads were not handed over"
    else:
        assert door._buffer == taken
        clock.advance(TIMEOUT)
        assert transport.disconnecting == (not flags & 8), "an idle connection was kept"
        assert not (web.built or websocket.built)
    (transport.protocol if flags & 1 else door).connectionLost(Failure(ConnectionDone()))
    if decided and inner is not None:
        assert inner.lost == 1, f"connectionLost reached the protocol {inner.lost} times"


def describe(data: bytes) -> str:
    flags, sizes, body = parse(data)
    end = body.find(b"\r\n\r\n")
    shown = body if len(body) <= 600 else body[:300] + b"..." + body[-300:]
    names = [text for bit, text in FLAGS.items() if flags & bit]
    more = "..." if len(sizes) > 20 else ""
    return (f"flags {flags & 15}: {'; '.join(names) or 'none'}\n"
            f"{len(body)} bytes in chunks of {sizes[:20]}{more}, terminator at {end}\n"
            f"{shown!r}")


if __name__ == "__main__":
    harness.main(testOneInput, describe)
