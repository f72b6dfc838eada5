"""
wsservice: one Twisted process serving a browser client over HTTP and
WebSocket subprotocols (chat, echo, clock and plugins) on the same port.

Public, for plugin authors: L{wsservice.interfaces} (the contracts),
L{wsservice.handlers} (the built-in handlers), L{wsservice.testing} (test
doubles) and L{wsservice.config.HandlerSettings}.  Everything else may
change.

The path a connection takes, and the packages along it:

  - L{wsservice.web}: the port; the front door hands WebSocket upgrades on,
    and serves plain HTTP (static files, /healthz, /metrics).
  - L{wsservice.websocket}: everything that knows Autobahn: negotiation, the
    protocol and factory, the write path, the limits.
  - L{wsservice.handlers}: the subprotocols.
  - L{wsservice.rooms}: the rooms handlers share, in this process or
    through Redis.
  - L{wsservice.workers}: C{--workers}, the supervisor and its workers.

Around it: L{wsservice.tap} (the command line) and L{wsservice.config}
(what it produces), L{wsservice.service} (assembly), L{wsservice.process}
(process-wide settings).

Import rules, checked by C{tests/unit/test_layout.py}: L{wsservice.rooms}
imports neither L{wsservice.websocket} nor L{wsservice.web}; handlers import
only L{wsservice.interfaces}, L{wsservice.rooms.events}, L{wsservice.timefmt}
and Twisted; only C{websocket/_autobahn.py} and C{websocket/_twisted.py} use
Autobahn's and Twisted's non-public names.
"""

__version__ = "0.1.0"
