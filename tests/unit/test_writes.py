"""
The write path in memory: frames coalesced per reactor turn, a fan-out's
first frame sent at once, the send budget of a connection that stopped
reading, and a close that follows the frames written before it.

The transport is a L{StringTransport} dressed as a plain TCP transport, with
a socket that records each C{send()}; the reactor turn is a L{task.Clock}.
"""

from __future__ import annotations

from types import SimpleNamespace

from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from wsservice.websocket.limits import SendBudget
from wsservice.websocket.writes import CoalescedWrites, WriteScheduler


class RecordingSocket:
    """
    Takes at most C{room} bytes per C{send()} (all, by default), and keeps
    each send.
    """

    def __init__(self) -> None:
        self.sends: list[bytes] = []
        self.room: int | None = None

    def send(self, data: bytes) -> int:
        taken = data if self.room is None else data[: self.room]
        self.sends.append(bytes(taken))
        return len(taken)


class TCPLikeTransport(StringTransport):
    """
    A StringTransport with the attributes a direct write reads; what goes
    through C{write} is queued, as in a real transport, until L{drain}.
    """

    def __init__(self) -> None:
        super().__init__()
        self.socket = RecordingSocket()
        self.dataBuffer = b""
        self._tempDataBuffer: list[bytes] = []
        self.connected = True

    def write(self, data: bytes) -> None:
        super().write(data)
        self._tempDataBuffer.append(data)

    def drain(self) -> None:
        self._tempDataBuffer = []


class Connection(CoalescedWrites):
    """
    The write path alone, as a protocol mixes it in: direct writes allowed.
    """

    writesStopped = False

    def __init__(self, writes: WriteScheduler, budget: SendBudget | None = None) -> None:
        self.transport = TCPLikeTransport()
        self.factory = SimpleNamespace(writes=writes)
        self._sendBudget = budget
        self.overflows = 0

    def sendBufferOverflowed(self) -> None:
        self.writesStopped = True
        self.overflows += 1
        self.writeFrame(b"<close>")

    @property
    def sent(self) -> list[bytes]:
        return self.transport.socket.sends


def test_replies_in_one_turn_leave_in_one_send_at_its_end():
    """
    Frames that are not a fan-out wait for the end of the turn and leave
    together, in order.
    """
    clock = Clock()
    conn = Connection(WriteScheduler(clock))
    conn.writeFrame(b"a")
    conn.writeFrame(b"b")
    assert conn.sent == []
    clock.advance(0)
    assert conn.sent == [b"ab"]
    conn.writeFrame(b"c")
    clock.advance(0)
    assert conn.sent == [b"ab", b"c"]


def test_a_fan_outs_first_frame_goes_at_once_and_later_ones_wait():
    """
    A connection's first fan-out frame in a turn is sent at once; later
    frames in the same turn wait for its end.
    """
    clock = Clock()
    conn = Connection(WriteScheduler(clock))
    conn.writeFrame(b"1", fanOut=True)
    assert conn.sent == [b"1"]
    conn.writeFrame(b"2", fanOut=True)
    conn.writeFrame(b"3", fanOut=True)
    assert conn.sent == [b"1"]
    clock.advance(0)
    assert conn.sent == [b"1", b"23"]


def test_fan_outs_wait_too_while_messages_pile_up_per_turn():
    """
    After several turns with many fan-out frames per connection, the
    policy coalesces, and even a turn's first fan-out frame waits.
    """
    clock = Clock()
    writes = WriteScheduler(clock)
    conn = Connection(writes)
    for turn in range(10):
        for n in range(5):
            conn.writeFrame(b"x", fanOut=True)
        clock.advance(0)
    assert writes.policy.coalescing
    before = len(conn.sent)
    conn.writeFrame(b"y", fanOut=True)
    assert len(conn.sent) == before
    clock.advance(0)
    assert conn.sent[-1] == b"y"


def test_what_the_socket_does_not_take_goes_to_the_transport_in_order():
    """
    A partial send leaves the rest to the transport, and later frames queue
    behind it instead of overtaking it.
    """
    clock = Clock()
    conn = Connection(WriteScheduler(clock))
    conn.transport.socket.room = 3
    conn.writeFrame(b"hello", fanOut=True)
    assert conn.sent == [b"hel"]
    assert conn.transport.value() == b"lo"
    conn.writeFrame(b" world")
    clock.advance(0)
    assert conn.sent == [b"hel"]
    assert conn.transport.value() == b"lo world"


def test_a_connection_over_its_send_budget_gets_a_close_and_nothing_more():
    """
    While the transport is paused, written bytes count against the budget;
    past it the connection is closed once, the frame that overflowed is
    dropped, and the close frame still goes out.
    """
    clock = Clock()
    budget = SendBudget(limit=10)
    conn = Connection(WriteScheduler(clock), budget)
    budget.pauseProducing()
    conn.writeFrame(b"12345")
    conn.writeFrame(b"67890")
    conn.writeFrame(b"overflow!")
    conn.writeFrame(b"more")
    clock.advance(0)
    assert conn.overflows == 1
    assert conn.sent == [b"1234567890<close>more"]


def test_the_budget_starts_again_once_the_transport_drained():
    """
    A transport that resumes its producer (its buffer drained) resets the
    count: a reader that keeps up is never closed.
    """
    budget = SendBudget(limit=10)
    assert not budget.charge(100)
    budget.pauseProducing()
    assert not budget.charge(8)
    budget.resumeProducing()
    budget.pauseProducing()
    assert not budget.charge(8)
    assert budget.charge(3)


def test_a_dead_connection_writes_nothing():
    """
    Frames for a connection that is gone are neither sent nor queued.
    """
    clock = Clock()
    conn = Connection(WriteScheduler(clock))
    conn.transport.connected = False
    conn.writeFrame(b"late", fanOut=True)
    conn.writeFrame(b"later")
    clock.advance(0)
    assert conn.sent == [] and conn.transport.value() == b""


def test_closing_sends_the_frames_written_before_it():
    """
    A real ServiceProtocol that is closed mid-turn sends what it held back
    (its reply, then its close frame) before the TCP connection closes.
    """
    from wsservice.config import HandlerSettings, Limits, ProtocolSettings
    from wsservice.handlers.echo import EchoHandler
    from wsservice.metrics import ServiceMetrics
    from wsservice.registry import HandlerRegistry
    from wsservice.testing import FakeContext
    from wsservice.websocket.factory import ServiceFactory

    context = FakeContext()
    settings = ProtocolSettings(Limits(openHandshakeTimeout=0, pingInterval=0,
                                       closeHandshakeTimeout=0),
                                HandlerSettings(), "echo")
    factory = ServiceFactory(HandlerRegistry.fromPlugins([EchoHandler]), context.rooms,
                             settings, ServiceMetrics(), context.clock)
    proto = factory.buildProtocol(None)
    transport = TCPLikeTransport()
    proto.makeConnection(transport)
    proto._direct = True  # a TCPLikeTransport is not a tcp.Connection
    proto.dataReceived(
        b"GET /r HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    context.clock.advance(0)
    handshake = b"".join(transport.socket.sends)
    assert handshake.startswith(b"HTTP/1.1 101")
    proto.sendOutgoing(b"bye", False)
    proto.closeWith(4000, "done")
    assert b"".join(transport.socket.sends) == handshake
    proto.dropConnection(abort=False)
    sent = b"".join(transport.socket.sends)[len(handshake):]
    assert sent.startswith(b"\x81\x03bye\x88")
    assert transport.disconnecting
