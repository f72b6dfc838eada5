"""
Protections of the running service, over real sockets: sizes, encodings,
protocol violations, floods, slow readers, keepalive and origins.
"""

from __future__ import annotations

import json
import os
import re
import urllib.request

from tests.support.rawws import RawClient, frame
from tests.support.wsclient import closeCode, open_, recvJSON, recvUntil, refusal


def rssKiB(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        return int(re.search(r"VmRSS:\s+(\d+)", status.read()).group(1))


def metrics(service) -> str:
    with urllib.request.urlopen(service.url("/metrics", "http"), timeout=10) as response:
        return response.read().decode()


def test_oversized_invalid_utf8_and_protocol_violations_get_precise_codes(serviceFactory):
    """
    An oversized message closes with 1009, invalid UTF-8 with 1007 and a
    protocol violation with 1002, each with a reason, and the service logs it.
    """
    service = serviceFactory("--max-message-size", "1000", "--log-connections")
    with open_(service.url(), "echo") as ws:
        ws.send("x" * 1000)
        assert len(ws.recv(timeout=10)) == 1000
        ws.send("x" * 1001)
        code, reason = closeCode(ws)
        assert code == 1009 and reason
    with RawClient(service.port) as raw:
        raw.send(frame(0x1, b"\xc3\x28 invalid"))
        code, reason = raw.closeCode()
        assert code == 1007 and reason
    with RawClient(service.port) as raw:
        raw.send(frame(0x1, b"not masked", mask=False))
        assert raw.closeCode()[0] == 1002
    with RawClient(service.port) as raw:
        raw.send(frame(0x3, b"reserved opcode"))
        assert raw.closeCode()[0] == 1002
    with RawClient(service.port) as raw:
        raw.send(frame(0x9, b"p" * 126))
        assert raw.closeCode()[0] == 1002
    service.waitForLog(r"code=1009")
    service.waitForLog(r"code=1007")


def test_message_flood_closes_with_4002_and_spares_others(serviceFactory):
    """
    A client over --max-messages-per-second is closed with 4002 once it has
    stayed over for --rate-limit-grace, while another client in the room
    keeps being served.
    """
    service = serviceFactory("--max-messages-per-second", "5", "--rate-limit-grace", "1")
    with open_(service.url("/flood"), "chat") as calm, open_(service.url("/flood"), "chat") as flooder:
        recvUntil(calm, "welcome")
        for n in range(200):
            try:
                flooder.send(json.dumps({"message": f"spam {n}"}))
            except Exception:
                break
        assert closeCode(flooder) == (4002, "rate limit exceeded")
        calm.send(json.dumps({"message": "still fine"}))
        while recvUntil(calm, "message")["message"] != "still fine":
            pass
    service.waitForLog(r"over 5 messages per second")


def test_max_connections_answers_503_at_the_handshake(serviceFactory):
    """
    Past --max-connections a handshake gets HTTP 503; closing one makes room.
    """
    service = serviceFactory("--max-connections", "2", "--log-connections")
    with open_(service.url(), "echo"), open_(service.url(), "echo"):
        status, body = refusal(service.url(), "echo")
        assert status == 503 and "too many connections" in body
    service.waitForLog(r"close .* c2 code=1000")
    with open_(service.url(), "echo") as ws:
        ws.send("room again")
        assert ws.recv(timeout=10) == "room again"


def test_slow_reader_is_closed_and_memory_stays_bounded(serviceFactory):
    """
    A client that never reads, in a busy room, is closed with 4001 once its
    send buffer passes --max-send-buffer; the server's memory stays under
    a bound and the other member receives every message.
    """
    limit = 512 * 1024
    service = serviceFactory("--max-send-buffer", str(limit), "--max-messages-per-second", "0",
                             "--max-message-size", str(128 * 1024))
    baseline = rssKiB(service.proc.pid)
    payload = "y" * (60 * 1024)
    count = 400  # 24 MiB through the room: far past any kernel buffer
    with RawClient(service.port, "/busy", "chat", recvBuffer=4096) as sleeper, \
            open_(service.url("/busy"), "chat") as reader, open_(service.url("/busy"), "chat") as sender:
        recvUntil(reader, "welcome")
        recvUntil(sender, "welcome")
        received = {reader: 0, sender: 0}
        for n in range(count):
            sender.send(json.dumps({"message": f"{n}:{payload}"}))
            # Keep both readers current so only the sleeper falls behind.
            for ws in received:
                event = recvUntil(ws, "message")
                assert event["message"].startswith(f"{received[ws]}:")
                received[ws] += 1
        assert list(received.values()) == [count, count]
        service.waitForLog(r"too slow, over 524288 bytes waiting")
        grown = rssKiB(service.proc.pid) - baseline
        # The bound: the slow reader's limit plus working room, far below
        # the 24 MiB that went through the room.
        assert grown < 12 * 1024, f"RSS grew by {grown} KiB"
        sleeper.sock.settimeout(10)
        assert sleeper.closeCode()[0] in (4001, None)
    assert 'wsservice_slow_reader_closes_total 1.0' in metrics(service)


def test_peer_that_stops_answering_pings_is_closed_and_freed(serviceFactory):
    """
    With keepalive on, a peer that never answers pings is closed after the
    timeout and its connection is freed; a normal client stays open.
    """
    service = serviceFactory("--ping-interval", "0.5", "--ping-timeout", "1", "--log-connections")
    with RawClient(service.port, "/", "echo") as silent, open_(service.url(), "echo") as alive:
        opcode, _ = silent.readFrame()
        assert opcode == 0x9
        line = service.waitForLog(r"close tcp4:127\.0\.0\.1:\d+ c1 code=")
        assert "ping timeout" in line
        alive.send("still here")
        assert alive.recv(timeout=10) == "still here"
        assert 'wsservice_connections_open{subprotocol="echo"} 1.0' in metrics(service)


def test_origins_same_origin_and_patterns(serviceFactory):
    """
    Pages served by the service and clients without Origin may connect; a
    foreign Origin gets 403 unless it matches --allowed-origin.
    """
    service = serviceFactory("--allowed-origin", "https://*.example.com")
    own = f"http://127.0.0.1:{service.port}"
    for origin in (None, own, "https://app.example.com"):
        with RawClient(service.port, origin=origin) as raw:
            assert raw.status == 101, origin
    for origin in ("http://evil.example", "https://example.com.evil.net", "null"):
        with RawClient(service.port, origin=origin) as raw:
            assert raw.status == 403, origin
    service.waitForLog(r"refused tcp4:127\.0\.0\.1:\d+: 403 origin http://evil\.example")


def test_metrics_and_health(serviceFactory):
    """
    /healthz answers 200 while serving and /metrics counts connections,
    handshakes, messages and closes in Prometheus text format.
    """
    service = serviceFactory("--log-connections")
    with urllib.request.urlopen(service.url("/healthz", "http"), timeout=10) as response:
        assert response.status == 200
    with open_(service.url(), "echo") as ws:
        ws.send("count me")
        ws.recv(timeout=10)
        text = metrics(service)
        assert 'wsservice_connections_open{subprotocol="echo"} 1.0' in text
    refusal(service.url(), "nope")
    service.waitForLog(r"close .* code=1000")
    text = metrics(service)
    for line in ('wsservice_messages_received_total{subprotocol="echo"} 1.0',
                 'wsservice_sent_bytes_total{subprotocol="echo"} 8.0',
                 'wsservice_handshakes_refused_total{reason="subprotocol"} 1.0',
                 'wsservice_closes_total{code="1000",subprotocol="echo"} 1.0',
                 'wsservice_connections_open{subprotocol="echo"} 0.0'):
        assert line in text, line
    assert "wsservice_rooms 0.0" in text


def test_open_file_limit_is_raised_for_max_connections():
    """
    Start-up raises the soft open-file limit so --max-connections sockets fit,
    within the hard limit.
    """
    import resource
    import subprocess
    import sys

    code = (
        "import resource\n"
        "from wsservice.process import raiseOpenFileLimit\n"
        "soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))\n"
        "print(raiseOpenFileLimit(1000), resource.getrlimit(resource.RLIMIT_NOFILE)[0])\n"
    )
    from tests.support.processes import REPO

    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=str(REPO))
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    expected = min(1064, hard) if hard != resource.RLIM_INFINITY else 1064
    assert result.stdout.split() == [str(expected), str(expected)], result.stderr


def test_start_up_paces_the_garbage_collector():
    """
    Starting the service's process settings freezes what exists at start
    out of collections and collects the young generation every 50,000
    allocations instead of 700; a cycle made afterwards is still collected.
    """
    import subprocess
    import sys

    code = (
        "import gc, weakref\n"
        "from twisted.internet.task import Clock\n"
        "from wsservice.process import ProcessSettings\n"
        "import wsservice.process as p\n"
        "p.exitCleanlyOnSignals = lambda reactor: None\n"
        "ProcessSettings(Clock(), 10).startService()\n"
        "class Node: pass\n"
        "a, b = Node(), Node(); a.b, b.a = b, a\n"
        "gone = weakref.ref(a); del a, b\n"
        "print(gc.get_threshold()[:2], gc.get_freeze_count() > 1000, gc.collect() >= 2, gone() is None)\n"
    )
    from tests.support.processes import REPO

    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=str(REPO))
    assert result.stdout.split() == ["(50000,", "20)", "True", "True", "True"], result.stderr


def test_permessage_deflate_is_negotiated_only_when_enabled(serviceFactory):
    """
    With --permessage-deflate a client that offers the extension gets it, and
    compressed messages up to the size limit round-trip; without it the
    offer is declined and the connection works uncompressed.
    """
    service = serviceFactory("--permessage-deflate", "--max-message-size", "100000")
    with open_(service.url(), "echo") as ws:
        assert "permessage-deflate" in ws.response.headers["Sec-WebSocket-Extensions"]
        text = "compressible " * 7000
        ws.send(text[:100000])
        assert ws.recv(timeout=10) == text[:100000]
        ws.send(b"\x00\xff" * 1000)
        assert ws.recv(timeout=10) == b"\x00\xff" * 1000
    plain = serviceFactory()
    with open_(plain.url(), "echo") as ws:
        assert "Sec-WebSocket-Extensions" not in ws.response.headers
        ws.send("uncompressed")
        assert ws.recv(timeout=10) == "uncompressed"


def droppedByServer(sock) -> bool:
    """
    Whether the server ends the connection (FIN or RST) before C{sock}'s
    timeout, reading nothing more.
    """
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def test_handshake_timeouts_drop_silent_peers(serviceFactory):
    """
    A client that connects and never finishes its request is dropped after
    --open-handshake-timeout, and one that never answers the server's close
    frame after --close-handshake-timeout; both are logged and others are
    served meanwhile.  The sockets wait 3 s, less than either default.
    """
    import socket

    service = serviceFactory(
        "--open-handshake-timeout", "0.5", "--close-handshake-timeout", "0.5",
        "--max-message-size", "100", "--log-connections",
    )
    silent = socket.create_connection(("127.0.0.1", service.port), timeout=3)
    halfway = socket.create_connection(("127.0.0.1", service.port), timeout=3)
    halfway.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n")
    with open_(service.url(), "echo") as ws:
        ws.send("served meanwhile")
        assert ws.recv(timeout=10) == "served meanwhile"
    for sock in (silent, halfway):
        with sock:
            assert droppedByServer(sock)
    service.waitForLog(r"dropped 127\.0\.0\.1:\d+: no complete request within 0\.5 s")
    with RawClient(service.port, timeout=3) as raw:
        raw.send(frame(0x1, b"x" * 101))
        opcode, payload = raw.readFrame()
        assert opcode == 0x8 and payload[:2] == (1009).to_bytes(2, "big")
        # Never answer the close frame.
        assert droppedByServer(raw.sock)
    service.waitForLog(r"code=1009")
