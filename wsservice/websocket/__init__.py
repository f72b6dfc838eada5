"""
Everything that knows Autobahn: a WebSocket connection's life from the
opening handshake to its close.

  1. L{negotiation} decides whether a client may connect and which handler
     serves it (pure functions).
  2. L{protocol.ServiceProtocol} runs the connection: it builds the handler
     in C{onOpen}, forwards messages within the rate limit, and closes only
     this connection, with L{CLOSE_INTERNAL_ERROR}, when the handler raises.
  3. L{connection} is what the handler holds (L{IConnection}, L{IRequest},
     L{IHandlerContext}).
  4. L{writes} takes every frame to the socket, coalesced per reactor turn;
     L{limits} bounds what a connection may send us and leave unsent.
  5. L{factory.ServiceFactory} holds what connections share, and drains
     them on shutdown.

Autobahn and Twisted names outside their public APIs are used only in
L{_autobahn} and L{_twisted}.

Close codes are in L{wsservice.closecodes}, with what a client should do.
"""

from wsservice.closecodes import GOING_AWAY as CLOSE_GOING_AWAY
from wsservice.closecodes import INTERNAL_ERROR as CLOSE_INTERNAL_ERROR
from wsservice.closecodes import RATE_LIMITED as CLOSE_RATE_LIMITED
from wsservice.closecodes import TOKEN_EXPIRED as CLOSE_TOKEN_EXPIRED
from wsservice.closecodes import TOO_SLOW as CLOSE_TOO_SLOW

__all__ = ["CLOSE_GOING_AWAY", "CLOSE_INTERNAL_ERROR", "CLOSE_RATE_LIMITED",
           "CLOSE_TOKEN_EXPIRED", "CLOSE_TOO_SLOW"]
