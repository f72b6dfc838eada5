"""
What the fuzz targets share: the record format that turns a fuzzer's bytes
into a sequence of operations, and the entry point that runs a target under
atheris (or, without atheris, replays the files it is given).

A record is one operation byte and its payload, and records are separated
by L{SEP}, two bytes that never occur in UTF-8, so no text payload is ever
cut (a binary payload cannot hold them).  A separator rather than a length field lets the fuzzer insert and
erase bytes inside a payload without spilling into the next record.  Every
input is valid, so the fuzzer spends no time on rejected ones, and seeds
are easy to write with L{record}.
"""

from __future__ import annotations

import contextlib
import sys
from typing import Callable, ContextManager, Iterator

try:
    import atheris
except ImportError:  # replaying files works without it
    atheris = None


#: Between two records: bytes that UTF-8 never uses.
SEP = b"\xfe\xff"


def records(data: bytes) -> Iterator[tuple[int, bytes]]:
    """
    The C{(op, payload)} records C{data} holds, in order.
    """
    for chunk in data.split(SEP):
        if chunk:
            yield chunk[0], chunk[1:]


def record(op: int, payload: bytes = b"") -> bytes:
    """
    One record, for seeds and regression inputs.
    """
    return bytes([op]) + payload + SEP


def text(payload: bytes) -> bytes:
    """
    C{payload} as the valid UTF-8 Autobahn hands a handler for a text frame:
    invalid sequences replaced, every valid one kept (JSON escapes such as
    C{\\ud800} are ASCII and survive).
    """
    return payload.decode("utf-8", "replace").encode("utf-8")


def instrumented() -> ContextManager[object]:
    """
    Imports made inside this block are instrumented for coverage when the
    code runs under atheris; only wsservice's own modules are.
    """
    if atheris is None:
        return contextlib.nullcontext()
    return atheris.instrument_imports(include=["wsservice"])


def main(testOneInput: Callable[[bytes], None],
         describe: Callable[[bytes], str] | None = None) -> None:
    """
    Run a target: under atheris with libFuzzer's command line (corpus
    directories, C{-max_total_time=} and so on); C{--describe FILE...}
    prints what inputs mean; without atheris, each file argument is
    replayed once.
    """
    args = sys.argv[1:]
    if args[:1] == ["--describe"]:
        for path in args[1:]:
            with open(path, "rb") as f:
                print(describe(f.read()) if describe else repr(f.read()))
        return
    if atheris is None:
        if not args:
            sys.exit("atheris is not installed: only replaying files is possible")
        for path in args:
            with open(path, "rb") as f:
                testOneInput(f.read())
            print(f"{path}: ok")
        return
    atheris.Setup(sys.argv, testOneInput)
    atheris.Fuzz()
