"""
A raw WebSocket client on a plain socket, for what a well-behaved client
library will not send: invalid UTF-8, protocol violations, random bytes,
and a peer that never reads or answers pings.
"""

from __future__ import annotations

import base64
import os
import socket
import struct


def frame(opcode: int, payload: bytes, fin: bool = True, mask: bool = True, rsv: int = 0) -> bytes:
    """
    Encode one client frame.
    """
    head = bytes([(0x80 if fin else 0) | (rsv << 4) | opcode])
    length = len(payload)
    maskBit = 0x80 if mask else 0
    if length < 126:
        head += bytes([maskBit | length])
    elif length < 65536:
        head += bytes([maskBit | 126]) + struct.pack("!H", length)
    else:
        head += bytes([maskBit | 127]) + struct.pack("!Q", length)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


class RawClient:
    """
    A WebSocket client that does the opening handshake and then only what
    the test tells it to.
    """

    def __init__(self, port: int, path: str = "/", protocol: str | None = "echo",
                 origin: str | None = None, recvBuffer: int | None = None, timeout: float = 10) -> None:
        self.sock = socket.socket()
        if recvBuffer is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, recvBuffer)
        self.sock.settimeout(timeout)
        self.sock.connect(("127.0.0.1", port))
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [f"GET {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Upgrade: websocket",
                 "Connection: Upgrade", f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13"]
        if protocol:
            lines.append(f"Sec-WebSocket-Protocol: {protocol}")
        if origin:
            lines.append(f"Origin: {origin}")
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        self.buffer = b""
        while b"\r\n\r\n" not in self.buffer:
            chunk = self.sock.recv(4096)
            if not chunk:
                break
            self.buffer += chunk
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        self.status = int(head.split(b" ", 2)[1]) if head else 0

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def readFrame(self) -> tuple[int, bytes]:
        """
        Read one server frame: (opcode, payload).
        """

        def need(n: int) -> bytes:
            while len(self.buffer) < n:
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise ConnectionError("closed")
                self.buffer += chunk
            out, self.buffer = self.buffer[:n], self.buffer[n:]
            return out

        b0, b1 = need(2)
        length = b1 & 0x7F
        if length == 126:
            (length,) = struct.unpack("!H", need(2))
        elif length == 127:
            (length,) = struct.unpack("!Q", need(8))
        return b0 & 0x0F, need(length)

    def closeCode(self) -> tuple[int | None, str]:
        """
        Read frames until the server's close frame; return its code and
        reason (None if the TCP connection ends without one).
        """
        try:
            while True:
                opcode, payload = self.readFrame()
                if opcode == 8:
                    if len(payload) < 2:
                        return None, ""
                    return struct.unpack("!H", payload[:2])[0], payload[2:].decode("utf-8", "replace")
        except (ConnectionError, OSError):
            return None, ""

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> "RawClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
