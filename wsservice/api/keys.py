"""
API keys: each C{--api-key-file} holds one key per line (C{#} starts a
comment).  A file is reread when it changes, so a key is rotated without a
restart: add the new line, move the backends to it, delete the old line.
"""

from __future__ import annotations

import hmac
import os
from pathlib import Path
from typing import Sequence

from twisted.logger import Logger

#: The shortest key accepted: a guessable key is no key.
MIN_KEY_LENGTH = 16


class KeyFileError(ValueError):
    """
    A key file that cannot be used: missing, unreadable or without a key.
    """


def readKeys(path: Path) -> tuple[bytes, ...]:
    """
    The keys in C{path}; L{KeyFileError} saying why there are none usable.
    """
    try:
        text = path.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise KeyFileError(f"{path}: {e}") from e
    keys = []
    for number, line in enumerate(text.splitlines(), 1):
        key = line.split("#", 1)[0].strip()
        if not key:
            continue
        if len(key) < MIN_KEY_LENGTH or not key.isascii() or any(c.isspace() for c in key):
            raise KeyFileError(
                f"{path}:{number}: a key is at least {MIN_KEY_LENGTH} ASCII characters, no spaces")
        keys.append(key.encode("ascii"))
    if not keys:
        raise KeyFileError(f"{path}: no key in it")
    return tuple(keys)


class APIKeys:
    """
    The keys that open the API, from one or more files.

    A file that becomes unusable after the start keeps its last good keys
    (and the log says why), so a half-written edit never locks every
    backend out.
    """

    _log = Logger()

    def __init__(self, paths: Sequence[Path]) -> None:
        self._paths = tuple(paths)
        self._seen: dict[Path, tuple[float, int]] = {}
        self._keys: dict[Path, tuple[bytes, ...]] = {}
        for path in self._paths:
            self._load(path, strict=True)

    def _load(self, path: Path, strict: bool = False) -> None:
        try:
            stat = os.stat(path)
            stamp = (stat.st_mtime, stat.st_size)
        except OSError as e:
            if strict:
                raise KeyFileError(f"{path}: {e}") from e
            return
        if self._seen.get(path) == stamp:
            return
        self._seen[path] = stamp
        try:
            self._keys[path] = readKeys(path)
        except KeyFileError as e:
            if strict:
                raise
            self._log.warn("API keys kept as they were: {error}", error=str(e))
            return
        if not strict:
            self._log.info("API keys reloaded from {path}", path=str(path))

    def allows(self, presented: bytes) -> bool:
        """
        Whether C{presented} is one of the keys, compared in constant time.
        """
        for path in self._paths:
            self._load(path)
        found = False
        for keys in self._keys.values():
            for key in keys:
                found |= hmac.compare_digest(key, presented)
        return found
