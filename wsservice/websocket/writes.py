"""
The write path: how a connection's frames reach its socket.

Frames written in one reactor turn leave together, in one C{send()} per
connection, at the end of the turn (L{WriteScheduler}).  That suits
replies: a turn's replies to many clients go out together, and the clients'
next requests arrive together.  A room's fan-out is already one burst, so a
connection's first fan-out frame in a turn goes out at once, and the first
members have the message while the rest are visited; but while several
fan-outs reach the same connections in every turn, coalescing them saves
more, and L{FanOutPolicy} makes fan-outs wait too.

Writes on plain TCP go straight to the socket when the transport holds
nothing (L{wsservice.websocket._twisted.writeDirectly}).  Bytes written
while the transport is paused count against the connection's
L{SendBudget}; past it the connection is closed as too slow.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from wsservice.websocket._twisted import writeDirectly

if TYPE_CHECKING:
    from wsservice.websocket.limits import SendBudget


class FanOutPolicy:
    """
    Decides whether a room's fan-out writes go out at once or wait for the
    end of the reactor turn.

    Waiting pays while the connections written to get more than one fan-out
    message per turn, which then leave in one C{send()}; otherwise sending at
    once gets each message to the first members sooner.  The decision
    follows a moving average over turns, so one turn with two messages does
    not switch it, and big rooms, whose turns alternate between one message
    and many, stay coalesced.

    @ivar coalescing: whether fan-out writes wait, for this turn.
    @ivar repeats: fan-out writes in this turn to connections already
        written to in it.
    """

    __slots__ = ("coalescing", "repeats", "_perTurn")

    #: Coalesce above this many fan-out messages per connection per turn.
    THRESHOLD = 1.5
    #: Weight of the newest turn in the moving average.
    WEIGHT = 1 / 8

    def __init__(self) -> None:
        self.coalescing = False
        self.repeats = 0
        self._perTurn = 1.0

    def endTurn(self, connectionsWritten: int) -> None:
        """
        Account for a turn that wrote to C{connectionsWritten} connections
        and decide for the next one.
        """
        if connectionsWritten:
            perTurn = 1 + self.repeats / connectionsWritten
            self._perTurn += (perTurn - self._perTurn) * self.WEIGHT
        self.repeats = 0
        self.coalescing = self._perTurn > self.THRESHOLD


class WriteScheduler:
    """
    The connections of one factory that wrote in this reactor turn: each is
    flushed once the turn is over.

    @ivar policy: the L{FanOutPolicy} the turn's fan-outs follow.
    """

    _log = Logger()

    def __init__(self, clock: IReactorTime) -> None:
        self._clock = clock
        self._unflushed: list[CoalescedWrites] = []
        self.policy = FanOutPolicy()

    def schedule(self, writer: "CoalescedWrites") -> None:
        """
        Call C{writer.flushWrites()} once this reactor turn is over.
        """
        if not self._unflushed:
            self._clock.callLater(0, self.flush)
        self._unflushed.append(writer)

    def flush(self) -> None:
        """
        Flush every connection written to in this turn.
        """
        self.policy.endTurn(len(self._unflushed))
        unflushed, self._unflushed = self._unflushed, []
        for writer in unflushed:
            try:
                writer.flushWrites()
            except Exception:
                self._log.failure("flushing writes to {peer}", peer=getattr(writer, "peer", "?"))
                if writer.transport is not None:
                    writer.transport.abortConnection()


class CoalescedWrites:
    """
    The write path of one connection, mixed into its protocol ahead of
    L{wsservice.websocket._autobahn.ServerProtocolBase}.

    It needs C{transport}, C{factory.writes} (a L{WriteScheduler}),
    C{_sendBudget} (a L{SendBudget} or C{None}), C{writesStopped} and
    C{sendBufferOverflowed()} from its host.

    @ivar _pending: present in the instance only from a connection's first
        write in a reactor turn to the end of the turn: the frames waiting
        to be sent together, or C{()} after a first write that was sent at
        once.  The empty tuple rather than a list means a delivery
        allocates nothing the garbage collector tracks: its pauses were the
        p99 at low rates.
    @ivar _direct: whether writes may go straight to the socket.
    """

    transport: Any
    factory: Any
    writesStopped: bool
    _sendBudget: "SendBudget | None" = None
    _pending: list[bytes] | tuple[()] | None = None
    _direct = True

    def sendBufferOverflowed(self) -> None:
        raise NotImplementedError

    def writeFrame(self, data: bytes, fanOut: bool = False) -> None:
        budget = self._sendBudget
        if budget is not None and budget.charge(len(data)) and not self.writesStopped:
            # Its close frame comes back through here; this frame is dropped.
            self.sendBufferOverflowed()
            return
        pending = self._pending
        if pending is not None:
            if fanOut:
                self.factory.writes.policy.repeats += 1
            if pending:
                pending.append(data)
            else:
                self._pending = [data]
        elif self._direct:
            writes = self.factory.writes
            writes.schedule(self)
            if fanOut and not writes.policy.coalescing:
                self._pending = ()
                writeDirectly(self.transport, data)
            else:
                self._pending = [data]
        else:
            self.transport.write(data)

    def flushWrites(self) -> None:
        """
        Send what L{writeFrame} held back in this reactor turn.
        """
        pending = self.__dict__.pop("_pending", None)
        if pending and self.transport is not None:
            writeDirectly(self.transport, pending[0] if len(pending) == 1 else b"".join(pending))
