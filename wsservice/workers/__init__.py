"""
C{--workers N}: N worker processes on one machine serving the same
listening sockets, supervised by the C{twistd} process that started them.

The parent opens each C{--listen} socket itself and passes it to every
worker (inherited file descriptors 3, 4, ...), which adopts it with
C{adoptStreamPort}: the kernel hands each new connection to one of the
workers.  The parent never accepts; it keeps the sockets open so a worker
that dies is replaced (and logged) without closing the port.  SIGTERM to the
parent reaches every worker as SIGTERM; each closes its connections with
1001 and exits, then the parent exits.  A worker whose parent vanishes
(SIGKILL) sees its stdin pipe close and shuts down the same way.

Workers share rooms only through the broker, so C{--workers} > 1 requires
C{--broker}.

The parent's side is L{supervisor}; each child runs L{worker}.
"""
