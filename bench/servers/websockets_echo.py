"""
Reference echo server on the Python C{websockets} library (asyncio): every
message back to its sender.  C{--port N} (0 picks a free port), C{--backlog
N} (the accept queue; asyncio's default is 100); prints C{listening N}.
"""

import asyncio
import sys

from websockets.asyncio.server import serve


async def echo(ws):
    async for message in ws:
        await ws.send(message)


async def main(port: int, backlog: int) -> None:
    async with serve(echo, "127.0.0.1", port, compression=None, max_queue=None,
                     backlog=backlog) as server:
        sock = next(iter(server.sockets))
        print(f"listening {sock.getsockname()[1]}", flush=True)
        await asyncio.Future()


if __name__ == "__main__":
    argv = sys.argv

    def option(name: str, otherwise: int) -> int:
        return int(argv[argv.index(name) + 1]) if name in argv else otherwise

    asyncio.run(main(option("--port", 0), option("--backlog", 100)))
