"""
One WebSocket connection: the opening handshake's decision, the handler
built for it, and the guards around every handler call.

Handlers never see Autobahn.  L{ServiceProtocol} negotiates in C{onConnect}
(L{wsservice.websocket.negotiation}), builds the handler in C{onOpen},
forwards messages and closes, and turns any exception from a handler into a
close with L{CLOSE_INTERNAL_ERROR} for that connection alone.
"""

from __future__ import annotations

from typing import Any, Callable

from autobahn.websocket.types import ConnectionDeny, ConnectionRequest
from twisted.internet.defer import Deferred, fail, maybeDeferred
from twisted.internet.interfaces import IDelayedCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from wsservice.auth.carriers import findToken, splitOffers
from wsservice.auth.identity import AuthRefused, Identity
from wsservice.interfaces import IHandler, IHandlerFactory
from wsservice.rooms.names import roomFromPath
from wsservice.websocket import (
    CLOSE_INTERNAL_ERROR,
    CLOSE_RATE_LIMITED,
    CLOSE_TOKEN_EXPIRED,
    CLOSE_TOO_SLOW,
)
from wsservice.websocket._autobahn import ServerProtocolBase
from wsservice.websocket._twisted import replaceProducer, writesDirectly
from wsservice.websocket.connection import Connection, HandlerContext, Request
from wsservice.websocket.limits import RateGate, SendBudget
from wsservice.websocket.negotiation import Refusal, negotiate
from wsservice.websocket.writes import CoalescedWrites


class ServiceProtocol(CoalescedWrites, ServerProtocolBase):
    """
    One WebSocket connection: negotiation, limits, and a guarded handler.

    Its L{wsservice.websocket.factory.ServiceFactory} holds what all
    connections share: the registry, the rooms, the settings, the metrics.
    """

    _log = Logger()

    # Per-connection state starts as these class attributes and becomes an
    # instance attribute only when it changes (see ServerProtocolBase).
    _factoryChoice: IHandlerFactory | None = None
    _handler: IHandler | None = None
    _connection: Connection | None = None
    _gate: RateGate | None = None
    _metricLabels: str | None = None
    _refusalLogged = False
    # How often each kind of warning was logged, once, for this connection.
    _warnings: dict[str, int] | None = None
    # Closes the connection once its identity has expired (and the grace).
    _expiry: IDelayedCall | None = None

    @property
    def connection(self) -> Connection | None:
        """
        What its handler holds of it, once the handshake admitted it.
        """
        return self._connection

    # -- opening handshake --------------------------------------------------

    def connectionMade(self) -> None:
        super().connectionMade()
        budget = SendBudget(self.factory.settings.limits.maxSendBuffer)
        if replaceProducer(self.transport, budget):
            self._sendBudget = budget
        if not writesDirectly(self.transport):
            self._direct = False

    def onConnect(self, request: ConnectionRequest) -> str | None | Deferred[str | None]:
        """
        Admit the client and pick its handler, or refuse it with the reason;
        with an authenticator, once it has said who the client is.
        """
        factory = self.factory
        offered, token = request.protocols, None
        if factory.authenticator is not None:
            offered, token = splitOffers(offered)
        decision = negotiate(
            offered,
            request.headers.get("host", ""),
            request.origin,
            factory.settings,
            factory.registry,
            factory.openCount,
            factory.draining,
        )
        if isinstance(decision, Refusal):
            raise self._deny(request.peer, decision)
        self._factoryChoice = decision
        # A client that offered nothing must not be answered with a name.
        answer = decision.subprotocol if offered else None
        if factory.authenticator is None:
            self._connection = Connection(self, factory.newConnectionId(), decision.subprotocol,
                                          Request.fromAutobahn(request))
            return answer
        token = findToken(token, request.headers, request.params, factory.carriers)
        seen = Request.fromAutobahn(request, credentials=False)

        def admitted(identity: Identity) -> str | None:
            room = roomFromPath(seen.path)
            if not identity.allows(room):
                raise self._deny(request.peer, Refusal(
                    403, f"user {identity.user} may not open room {room}", "room"))
            self._connection = Connection(self, factory.newConnectionId(), decision.subprotocol,
                                          seen, identity)
            return answer

        def refused(failure: Failure) -> None:
            if failure.check(ConnectionDeny):
                failure.raiseException()
            if failure.check(AuthRefused):
                raise self._deny(request.peer, Refusal(failure.value.code, failure.value.reason, "auth"))
            self._log.failure("authenticator failed on {peer}", failure, peer=request.peer)
            raise self._deny(request.peer, Refusal(503, "authentication failed; try again later",
                                                   "auth-error"))

        return maybeDeferred(factory.authenticator.authenticate, seen, token).addCallbacks(
            admitted, refused)

    def _deny(self, peer: str, refusal: Refusal) -> ConnectionDeny:
        self._log.info(
            "refused {peer}: {code} {reason}", peer=peer, code=refusal.code, reason=refusal.reason
        )
        self.factory.metrics.handshakeRefused(refusal.label)
        self._refusalLogged = True
        return ConnectionDeny(refusal.code, refusal.reason)

    def handshakeFailed(self, code: int, reason: str) -> None:
        if not self._refusalLogged:
            self._log.info(
                "refused {peer}: {code} {reason}", peer=self.peer, code=code, reason=reason
            )
            self.factory.metrics.handshakeRefused("handshake")

    # -- open connection ----------------------------------------------------

    def onOpen(self) -> None:
        """
        Build the handler chosen in L{onConnect} and open it.
        """
        factory = self.factory
        connection, choice = self._connection, self._factoryChoice
        assert connection is not None and choice is not None
        del self._factoryChoice
        factory.opened(self)
        subprotocol = connection.subprotocol
        self._metricLabels = subprotocol
        factory.metrics.opened(subprotocol)
        limits = factory.settings.limits
        rate = limits.maxMessagesPerSecond
        if rate is None:
            rate = getattr(choice, "maxMessagesPerSecond", None) or 0
        if rate > 0:
            self._gate = RateGate(rate, max(2 * rate, 10.0), limits.rateLimitGrace,
                                  factory.clock.seconds())
        if factory.settings.logConnections:
            self._log.info(
                "open {peer} {subprotocol} {path} as {id}",
                peer=connection.request.peer,
                subprotocol=subprotocol,
                path=connection.request.path,
                id=connection.id,
            )
        context = HandlerContext(
            factory.clock,
            factory.rooms,
            factory.settings.handlers,
            factory.handlerLog(subprotocol),
            self.guarded,
        )
        if connection.identity is not None:
            self._watchExpiry(connection.identity)
        handler = self.guarded(choice, connection, context)
        if handler is not None:
            self._handler = handler
            self.guarded(handler.onOpen)
        self.dropHandshakeState()

    # -- identity -----------------------------------------------------------

    def _watchExpiry(self, identity: Identity) -> None:
        if self._expiry is not None and self._expiry.active():
            self._expiry.cancel()
        self._expiry = None
        if identity.expires is None:
            return
        clock = self.factory.clock
        grace = self.factory.settings.auth.grace
        self._expiry = clock.callLater(max(0.0, identity.expires + grace - clock.seconds()),
                                       self._expired)

    def _expired(self) -> None:
        self._expiry = None
        self.closeWith(CLOSE_TOKEN_EXPIRED, "token expired")

    def refreshIdentity(self, token: str) -> Deferred[Identity]:
        """
        Check C{token} for this connection's user and, if it holds, make it
        the connection's identity, which postpones the expiry close.
        """
        authenticator, connection = self.factory.authenticator, self._connection
        if authenticator is None or connection is None or connection.identity is None:
            return fail(AuthRefused(400, "this service does not authenticate"))
        current = connection.identity

        def refreshed(identity: Identity) -> Identity:
            if identity.user != current.user:
                raise AuthRefused(403, "the token is for another user")
            if self.isOpen():
                connection.identity = identity
                self._watchExpiry(identity)
            return identity

        return maybeDeferred(authenticator.refresh, current, token).addCallback(refreshed)

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        """
        Hand one message to the handler, within the connection's rate;
        nothing once the connection started closing.
        """
        handler = self._handler
        if handler is None or self.writesStopped or not self.isOpen():
            return
        self.factory.metrics.received(self._metricLabels, len(payload))
        gate = self._gate
        if gate is not None:
            now = self.factory.clock.seconds()
            if not gate.admit(payload, isBinary, now):
                if gate.holding == 1:
                    self._slowDown(gate, now)
                return
        self.guarded(handler.onMessage, payload, isBinary)

    def _slowDown(self, gate: RateGate, now: float) -> None:
        """
        The peer is over its rate: stop reading from it (TCP holds the rest
        back, at its cost), and hand what is held over at the rate.
        """
        self.transport.pauseProducing()
        self.factory.metrics.rateLimited()
        self.warnOnce(
            "rate", "slowing {id} ({peer}) down: over {rate:g} messages per second; "
            "closing it if it stays over for {grace:g} s", rate=gate.rate, grace=gate.grace)
        self.factory.clock.callLater(gate.wait(now), self._release)

    def _release(self) -> None:
        gate, handler = self._gate, self._handler
        if gate is None or handler is None or not self.isOpen():
            return
        now = self.factory.clock.seconds()
        for payload, isBinary in gate.release(now):
            if not self.isOpen():
                return
            self.guarded(handler.onMessage, payload, isBinary)
        if gate.expired(now):
            gate.drop()
            self.transport.resumeProducing()  # so its close frame is read
            self.closeWith(CLOSE_RATE_LIMITED, "rate limit exceeded")
        elif gate.holding:
            self.factory.clock.callLater(gate.wait(now), self._release)
        else:
            self.transport.resumeProducing()

    def warnOnce(self, reason: str, text: str, **fields: Any) -> None:
        """
        Log a warning about this connection the first time C{reason} comes
        up; later ones are only counted, and the count is logged at close.
        """
        warnings = self._warnings
        if warnings is None:
            warnings = self._warnings = {}
        seen = warnings.get(reason, 0)
        warnings[reason] = seen + 1
        if not seen:
            connection = self._connection
            self._log.warn(text, id=connection.id if connection else "?",
                           peer=connection.request.peer if connection else self.peer, **fields)

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        """
        Log the close and tell the handler, once, if it was ever opened.
        """
        factory = self.factory
        if self._connection is None or self._metricLabels is None:
            return
        factory.closed(self)
        factory.metrics.closedWith(self._metricLabels, code)
        if factory.settings.logConnections:
            self._log.info(
                "close {peer} {id} code={code} reason={reason!r} clean={clean}",
                peer=self._connection.request.peer,
                id=self._connection.id,
                code=code,
                reason=reason,
                clean=wasClean,
            )
        if self._warnings:
            self._log.warn(
                "closed {id} ({peer}) with code {code} after warnings: {counts}",
                id=self._connection.id, peer=self._connection.request.peer, code=code,
                counts=", ".join(f"{k} x{n}" for k, n in self._warnings.items()))
        if self._gate is not None:
            self._gate.drop()
        if self._expiry is not None and self._expiry.active():
            self._expiry.cancel()
        handler, self._handler = self._handler, None
        if handler is not None:
            try:
                handler.onClose(wasClean, code, reason)
            except Exception:
                self._log.failure(
                    "handler {subprotocol} failed while closing {id}",
                    subprotocol=self._metricLabels,
                    id=self._connection.id,
                )

    def guarded(self, f: Callable[..., Any], *a: Any, **kw: Any) -> Any:
        """
        Call handler code; on an exception, log it and close this connection
        with L{CLOSE_INTERNAL_ERROR}, leaving every other connection alone.
        """
        try:
            return f(*a, **kw)
        except Exception:
            connection = self._connection
            self._log.failure(
                "handler {subprotocol} failed on {id} ({peer}); closing it",
                subprotocol=connection.subprotocol if connection else "?",
                id=connection.id if connection else "?",
                peer=connection.request.peer if connection else "?",
            )
            self.factory.metrics.handlerError(connection.subprotocol if connection else "?")
            self.closeWith(CLOSE_INTERNAL_ERROR, "internal error")
            return None

    # -- sending and closing ------------------------------------------------

    def sendOutgoing(self, payload: bytes, isBinary: bool) -> None:
        """
        Send one message unless the connection is closing or too slow.
        """
        if not self.isOpen() or self.writesStopped:
            return
        self.sendUnbounded(payload, isBinary)
        self.factory.metrics.sent(self._metricLabels, len(payload))

    def sendBufferOverflowed(self) -> None:
        """
        The peer stopped reading and its send budget is spent: close it as
        too slow, and drop it if even the close frame does not get through.
        """
        self.writesStopped = True
        limits = self.factory.settings.limits
        self.warnOnce("too-slow", "closing {id} ({peer}): too slow, over {limit} bytes waiting "
                      "to be sent", limit=limits.maxSendBuffer)
        self.factory.metrics.slowReaderClosed()
        # The close frame queues behind data the peer is not reading: give it
        # the close handshake timeout to arrive, then drop the connection.
        self.closeWith(CLOSE_TOO_SLOW, "too slow")
        self.factory.clock.callLater(limits.closeHandshakeTimeout, self.abortConnection)
