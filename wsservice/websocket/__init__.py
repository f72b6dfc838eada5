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

Application close codes (documented in the README):

  - 4000 internal error: the handler raised.
  - 4001 too slow: the peer did not read and its send buffer overflowed.
  - 4002 rate limit exceeded: the peer sent messages faster than allowed.
  - 4003 unsupported data: the subprotocol does not take this kind of message.
"""

CLOSE_GOING_AWAY = 1001
CLOSE_INTERNAL_ERROR = 4000
CLOSE_TOO_SLOW = 4001
CLOSE_RATE_LIMITED = 4002
CLOSE_UNSUPPORTED_DATA = 4003
