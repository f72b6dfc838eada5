"""
The open-file limit: every WebSocket is a file descriptor, and the usual
soft limit of 1024 is far below a service's --max-connections.
"""

from __future__ import annotations

import resource

from twisted.logger import Logger

_log = Logger()

#: Descriptors kept for listeners, logs, the broker and files served.
SPARE = 64


def raiseOpenFileLimit(connections: int) -> int:
    """
    Raise the soft open-file limit towards the hard one, enough for
    C{connections} sockets if allowed; warn when it cannot be enough.

    @return: the soft limit now in force.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = connections + SPARE if connections else hard
    if hard != resource.RLIM_INFINITY:
        wanted = min(wanted, hard)
    if wanted > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        soft = wanted
    if connections and soft < connections + SPARE:
        _log.warn(
            "the open-file limit {limit} is below --max-connections {connections}; "
            "connections past it will fail (raise the hard limit, e.g. ulimit -Hn)",
            limit=soft,
            connections=connections,
        )
    return soft
