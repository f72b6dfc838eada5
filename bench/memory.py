"""
Where the memory of an idle chat connection goes.

Runs the service tree in this process under C{tracemalloc}, opens N chat
connections to it from a thread with plain blocking sockets (so the clients
allocate almost nothing the server side could be confused with), and prints
the Python memory per connection with the allocation sites that hold it.

    .venv/bin/python bench/memory.py --connections 2000 --rooms 20

The benchmark's scenario 4 measures the same thing as RSS growth of the real
C{twistd} process; this tool says which lines to work on.
"""

from __future__ import annotations

import argparse
import base64
import gc
import os
import socket
import sys
import threading
import tracemalloc
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def handshake(port: int, path: str) -> socket.socket:
    """
    Open one WebSocket offering C{chat} and return it once the server has
    answered 101.
    """
    s = socket.create_connection(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall(
        (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: chat\r\n\r\n"
        ).encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(4096)
        if not chunk:
            raise RuntimeError("server closed during the handshake")
        head += chunk
    if not head.startswith(b"HTTP/1.1 101"):
        raise RuntimeError(head.split(b"\r\n", 1)[0].decode())
    return s


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--connections", type=int, default=2000)
    parser.add_argument("--rooms", type=int, default=20)
    parser.add_argument("--top", type=int, default=20, help="allocation sites to show")
    args = parser.parse_args(argv)

    sys.path.insert(0, str(REPO))
    from twisted.internet import reactor
    from twisted.internet.threads import blockingCallFromThread

    from tests.support.inprocess import startInProcess
    from wsservice.config import Limits, ServiceConfig

    config = ServiceConfig(
        listen=("tcp:0:interface=127.0.0.1",),
        staticDir=REPO / "static",
        limits=Limits(maxConnections=0),
    )
    clients: list[socket.socket] = []
    report: list[str] = []

    def measure() -> None:
        service, port = blockingCallFromThread(reactor, startInProcess, config, reactor)
        factory = service.factory
        portNumber = port.getHost().port
        # One connection first, so that lazily built state (imports, caches)
        # is in the baseline.
        clients.append(handshake(portNumber, "/warmup"))
        blockingCallFromThread(reactor, gc.collect)
        before = blockingCallFromThread(reactor, tracemalloc.take_snapshot)
        for i in range(args.connections):
            clients.append(handshake(portNumber, f"/idle{i % args.rooms}"))
        while blockingCallFromThread(reactor, lambda: factory.openCount) < len(clients):
            pass
        blockingCallFromThread(reactor, gc.collect)
        after = blockingCallFromThread(reactor, tracemalloc.take_snapshot)
        ignore = tracemalloc.Filter(False, __file__)
        stats = after.filter_traces([ignore]).compare_to(
            before.filter_traces([ignore]), "lineno"
        )
        n = args.connections
        total = sum(s.size_diff for s in stats)
        report.append(
            f"{n} idle chat connections in {args.rooms} rooms: "
            f"{total / n / 1024:.2f} KiB of Python memory per connection"
        )
        for s in stats[: args.top]:
            frame = s.traceback[0]
            where = os.path.relpath(frame.filename, REPO) if REPO.as_posix() in frame.filename else frame.filename
            report.append(
                f"  {s.size_diff / n:8.0f} B  {s.count_diff / n:5.1f} blocks  {where}:{frame.lineno}"
            )
        reactor.callFromThread(reactor.stop)

    tracemalloc.start()
    threading.Thread(target=measure, daemon=True).start()
    reactor.run()
    for s in clients:
        s.close()
    print("\n".join(report))
    return 0 if report else 1


if __name__ == "__main__":
    sys.exit(main())
