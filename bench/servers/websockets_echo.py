"""
Reference echo server on the Python C{websockets} library (asyncio): every
message back to its sender.  C{--port N} (0 picks a free port); prints
C{listening N}.
"""

import asyncio
import sys

from websockets.asyncio.server import serve


async def echo(ws):
    async for message in ws:
        await ws.send(message)


async def main(port: int) -> None:
    async with serve(echo, "127.0.0.1", port, compression=None, max_queue=None) as server:
        sock = next(iter(server.sockets))
        print(f"listening {sock.getsockname()[1]}", flush=True)
        await asyncio.Future()


if __name__ == "__main__":
    argv = sys.argv
    port = int(argv[argv.index("--port") + 1]) if "--port" in argv else 0
    asyncio.run(main(port))
