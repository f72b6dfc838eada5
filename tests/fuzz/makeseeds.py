"""
Write the committed seed corpus, C{tests/fuzz/seeds/TARGET/NAME}: real
frames from the README's protocol examples, real request heads and real
channel messages, in each target's record format.  Run it again after
changing a format:

    PYTHONPATH=. python -m tests.fuzz.makeseeds
"""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.fuzz.harness import record

SEEDS = Path(__file__).resolve().parent / "seeds"


def chat() -> dict[str, bytes]:
    TEXT, BINARY, NESTED, TICK, REJOIN, BYSTANDER, CLOSE_BYSTANDER, ESCAPED, MEMBERS = range(9)
    readme = [
        b'{"name": "alice", "message": "hi"}',
        b'{"message": "hi"}',
        b'{"type": "rename", "name": "bob"}',
        b'{"type": "join", "name": "carol"}',
        b'{"type": "members", "after": "100"}',
        b"hello there",
    ]
    seeds = {f"readme-{i}": b"\x00" + record(TEXT, m) for i, m in enumerate(readme)}
    seeds["readme-session"] = b"\x00" + b"".join(
        [record(TEXT, m) for m in readme] + [record(BINARY, b"\x00\x01\x02\xff"), record(TICK)])
    seeds["paging"] = b"\x01" + b"".join([
        record(TEXT, b'{"message": "one"}'), record(TEXT, b'{"message": "two"}'),
        record(TEXT, b'{"type": "members"}'), record(TEXT, b'{"type": "members", "after": "1"}'),
        record(MEMBERS, b"\x02"), record(MEMBERS), record(TICK),
    ])
    seeds["rejoin"] = b"\x02" + b"".join([
        record(REJOIN, b"al%20ice"), record(BYSTANDER, b'{"message": "welcome back"}'),
        record(TICK, b"\x19"), record(CLOSE_BYSTANDER), record(TEXT, b"still there?"),
    ])
    seeds["unicode"] = b"\x00" + b"".join([
        record(TEXT, '{"name": "Zoë", "message": "café ☕ 日本 \\u00e9"}'.encode()),
        record(ESCAPED, b"\x00\x00\x63\x00\x61\x00\x66\x00\xe9"),
        record(ESCAPED, b"\x01\x00\x5a\x00\x6f\x00\xeb"),
    ])
    seeds["errors"] = b"\x00" + b"".join([
        record(TEXT, b'{"name": 42, "message": "hi"}'), record(TEXT, b'{"type": "rename"}'),
        record(TEXT, b'{"type": "dance"}'), record(TEXT, b'{"message": null}'),
        record(TEXT, b'{"type": "members", "after": 7}'),
    ])
    seeds["nested"] = b"\x00" + record(NESTED, b"\x00\x00\x03" + b'"deep"')
    seeds["binary"] = b"\x00" + record(BINARY, bytes(range(256)))
    return seeds


def clock() -> dict[str, bytes]:
    TEXT, BINARY, NESTED, ADVANCE, REOPEN = range(5)
    return {
        "readme-interval": record(TEXT, b'{"interval": 0.5}') + record(ADVANCE, b"\x00\x64"),
        "readme-soon": record(TEXT, b"soon"),
        "bounds": b"".join(record(TEXT, b'{"interval": %s}' % v)
                           for v in (b"0", b"0.1", b"3600", b"3600.5", b"true", b'"1"')),
        "binary": record(BINARY, b"\x00\x01\x02\xff"),
        "nested": record(NESTED, b"\x00\x02" + b"1"),
        "reopen": record(ADVANCE, b"\x01\x00") + record(REOPEN) + record(TEXT, b'{"interval": 2}'),
    }


UPGRADE = (
    b"GET /kitchen?name=alice HTTP/1.1\r\n"
    b"Host: 127.0.0.1:60000\r\n"
    b"Connection: Upgrade\r\n"
    b"Pragma: no-cache\r\n"
    b"Cache-Control: no-cache\r\n"
    b"User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    b"Chrome/131.0.0.0 Safari/537.36\r\n"
    b"Upgrade: websocket\r\n"
    b"Origin: http://127.0.0.1:60000\r\n"
    b"Sec-WebSocket-Version: 13\r\n"
    b"Accept-Encoding: gzip, deflate, br, zstd\r\n"
    b"Accept-Language: en-US,en;q=0.9\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
    b"Sec-WebSocket-Protocol: chat\r\n"
    b"\r\n"
)
#: A masked text frame "hi" right behind the head, as a fast client sends it.
FRAME = b"\x81\x82\x37\xfa\x21\x3d\x5f\x93"


def frontdoor() -> dict[str, bytes]:
    def seed(flags: int, chunks: int, body: bytes, pad: int = 0) -> bytes:
        return bytes([flags, chunks]) + pad.to_bytes(2, "big") + body

    healthz = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:60000\r\nAccept: */*\r\n\r\n"
    return {
        "upgrade-tcp": seed(1, 0, UPGRADE + FRAME),
        "upgrade-tls-pieces": seed(0, 3, UPGRADE),
        "healthz": seed(1, 1, healthz),
        "keepalive-then-upgrade": seed(1, 2, healthz + UPGRADE),
        "refused": seed(7, 4, UPGRADE),
        "incomplete": seed(1, 5, UPGRADE[:200]),
        "big-cookie": seed(1, 6, UPGRADE, pad=15_000),
        "no-timeout": seed(9, 0, b"GET / HTTP/1.0\r\n"),
    }


def broker() -> dict[str, bytes]:
    RAW, PUBLISH, PUBLISH_BINARY, DELIVER, JOIN, ACTIVATE, LEAVE = range(7)
    message = (b'{"type":"message","name":"alice","message":"hi","id":"c7","room":"kitchen",'
               b'"time":"2026-11-23T18:44:49.001Z","seq":43}')
    presence = (b'{"type":"presence","name":"","message":"alice joined","joined":[{"id":"c7",'
                b'"name":"alice"}],"joinedCount":1,"left":[],"leftCount":0,"renamed":[],'
                b'"renamedCount":0,"room":"kitchen","time":"2026-11-23T18:44:48.123Z",'
                b'"count":2,"users":2,"seq":42}')
    return {
        "wire-batch": record(RAW, b'e 12 102 nodeA 0\n{"seq":12}\n{"seq":13}\n{"seq":14}'),
        "wire-readme": record(RAW, b"e 42 21 n1 0\n" + presence + b"\n" + message),
        "wire-binary": record(RAW, b"b nodeB 1\nAP8="),
        "wire-own-replay": record(RAW, b"e 7 1 n0 1\n" + message),
        "race": b"".join([
            record(JOIN), record(PUBLISH, b"\x01\x01hi"), record(ACTIVATE, b"\x00"),
            record(PUBLISH, b"\x00\x11two"), record(DELIVER), record(ACTIVATE, b"\x01"),
            record(PUBLISH_BINARY, b"\x00\x01\x02\xff"), record(DELIVER, b"\x00"),
            record(LEAVE, b"\x01"), record(DELIVER),
        ]),
        "replayed": record(PUBLISH, b"\x02\x30own") + record(JOIN) + record(DELIVER)
        + record(ACTIVATE),
    }


def main() -> None:
    for target, seeds in (("chat", chat()), ("clock", clock()), ("frontdoor", frontdoor()),
                          ("broker", broker())):
        folder = SEEDS / target
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        for name, data in seeds.items():
            (folder / name).write_bytes(data)
        print(f"{folder}: {len(seeds)} seeds")


if __name__ == "__main__":
    main()
