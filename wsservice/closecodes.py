"""
The close codes the service sends, in one table with what a client should
do on each (the README's "Close codes" section is this table).

Ranges a client can act on without knowing every code:

  - 1000-1015 (RFC 6455): 1001 and 1006 mean reconnect; 1003, 1007, 1008
    and 1009 mean the client sent something it must not send again.
  - 4000-4099: reconnect, with backoff.
  - 4100-4199: reconnect with a new token.
  - 4400-4499: do not reconnect.
"""

from __future__ import annotations

NORMAL = 1000
GOING_AWAY = 1001             # the server is shutting down: reconnect
UNSUPPORTED_DATA = 1003       # e.g. binary to a text-only handler: do not send it again
POLICY_VIOLATION = 1008       # e.g. a room name too long: do not reconnect as is

INTERNAL_ERROR = 4000         # a handler raised: reconnect
TOO_SLOW = 4001               # the client did not read: reconnect
RATE_LIMITED = 4002           # over its message rate: reconnect after backoff
TOKEN_EXPIRED = 4100          # its identity expired unrefreshed: reconnect with a new token
FORBIDDEN = 4403              # no longer allowed here: do not reconnect

#: What each range asks of a client.
RECONNECT = range(4000, 4100)
NEW_TOKEN = range(4100, 4200)
STOP = range(4400, 4500)


def advice(code: int | None) -> str:
    """
    C{"reconnect"}, C{"new-token"} or C{"stop"}: what a client should do
    after a close with C{code}.
    """
    if code in NEW_TOKEN:
        return "new-token"
    if code in STOP or code in (UNSUPPORTED_DATA, 1007, POLICY_VIOLATION, 1009):
        return "stop"
    return "reconnect"
