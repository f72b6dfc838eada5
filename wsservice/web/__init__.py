"""
The port: what first meets every connection, and plain HTTP.

A WebSocket reaches L{wsservice.websocket} by one of two routes, and a
change to the handshake must work for both:

  1. L{frontdoor.FrontDoor} reads a new connection's first request head
     and hands an upgrade straight to the WebSocket factory (the common
     case: a browser's WebSocket is a connection of its own).
  2. An upgrade on a kept-alive HTTP connection arrives in twisted.web,
     where L{resources.UpgradeAwareRoot} routes it, on any path, to
     Autobahn's C{WebSocketResource}.

Everything else is twisted.web: the browser client as static files
(L{client}), C{/healthz} and C{/metrics} (L{resources}).
"""
