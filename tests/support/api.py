"""
A small client of the backend API for tests and the benchmark: real HTTP
over loopback with the standard library, answers as C{(status, JSON)}.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

KEY = "test-api-key-0123456789"


class API:
    """
    Calls one service's C{/api} with C{key}.
    """

    def __init__(self, base: str, key: str | None = KEY) -> None:
        self.base = base.rstrip("/")
        self.key = key

    def call(self, method: str, path: str, body: Any = None, raw: bytes | None = None,
             headers: dict[str, str] | None = None) -> tuple[int, Any, dict[str, str]]:
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        request = urllib.request.Request(self.base + path, method=method, data=data,
                                         headers={"Content-Type": "application/json",
                                                  **(headers or {})})
        if self.key is not None:
            request.add_header("Authorization", f"Bearer {self.key}")
        try:
            with urllib.request.urlopen(request, timeout=15) as answer:
                status, content, got = answer.status, answer.read(), dict(answer.headers)
        except urllib.error.HTTPError as e:
            status, content, got = e.code, e.read(), dict(e.headers)
        try:
            value = json.loads(content) if content else None
        except ValueError:
            value = content
        return status, value, got

    def get(self, path: str) -> tuple[int, Any]:
        status, value, _ = self.call("GET", path)
        return status, value

    def post(self, path: str, body: Any) -> tuple[int, Any]:
        status, value, _ = self.call("POST", path, body)
        return status, value

    def publish(self, room: str, message: str, **fields: Any) -> dict[str, Any]:
        from urllib.parse import quote

        status, value = self.post(f"/api/rooms/{quote(room, safe='')}/publish",
                                  {"message": message, **fields})
        assert status == 200, (status, value)
        return value


def keyFile(directory, *keys: str) -> str:
    """
    Write C{keys} (default L{KEY}) to a key file in C{directory}; its path.
    """
    path = directory / "api.keys"
    path.write_text("# backend keys\n" + "\n".join(keys or (KEY,)) + "\n")
    return str(path)
