"""
--listen takes Twisted endpoint strings: TLS (wss://) with a certificate the
test makes, Unix sockets, and several listeners at once.
"""

from __future__ import annotations

import datetime
import ssl
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from websockets.sync.client import unix_connect

from tests.support.tools import requireTool
from tests.support.wsclient import open_, recvJSON


def makeCertificate(directory: Path) -> tuple[Path, Path]:
    """
    A self-signed certificate for 127.0.0.1 and its key, as PEM files.
    """
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    import ipaddress

    certificate = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                       critical=False)
        .sign(key, hashes.SHA256())
    )
    keyPath, certPath = directory / "key.pem", directory / "cert.pem"
    keyPath.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                          serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    certPath.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return keyPath, certPath


def test_wss_and_ws_listeners_at_once(tmp_path, serviceFactory):
    """
    With an ssl: and a tcp: listener, wss:// and ws:// both work, and TLS
    clients get the same handlers.
    """
    key, cert = makeCertificate(tmp_path)
    service = serviceFactory(
        "--listen", f"ssl:0:interface=127.0.0.1:privateKey={key}:certKey={cert}",
        "--listen", "tcp:0:interface=127.0.0.1",
    )
    tlsPort, plainPort = service.ports
    context = ssl.create_default_context(cafile=str(cert))
    with open_(f"wss://127.0.0.1:{tlsPort}/secure", "echo", ssl=context) as ws:
        ws.send("over tls")
        assert ws.recv(timeout=10) == "over tls"
    with open_(f"wss://127.0.0.1:{tlsPort}/secure", "chat", ssl=context) as ws:
        assert recvJSON(ws)["message"] == "Connected!"
    with open_(f"ws://127.0.0.1:{plainPort}/", "echo") as ws:
        ws.send("plain")
        assert ws.recv(timeout=10) == "plain"


def test_unix_socket_listener(tmp_path, serviceFactory):
    """
    A unix: listener serves WebSocket clients on a Unix socket.
    """
    socketPath = tmp_path / "ws.sock"
    serviceFactory("--listen", f"unix:{socketPath}")
    with unix_connect(str(socketPath), "ws://localhost/", subprotocols=["echo"], open_timeout=10) as ws:
        ws.send("local")
        assert ws.recv(timeout=10) == "local"


def listenQueue(port: int) -> int:
    """
    The accept queue (backlog) of the socket listening on C{port}, as the
    kernel reports it (C{ss}: Send-Q of a listening socket).
    """
    import subprocess

    ss = requireTool("ss")
    out = subprocess.run([ss, "-Hltn", f"sport = :{port}"], capture_output=True, text=True,
                         check=True).stdout.split()
    return int(out[2])


def test_port_listens_with_a_backlog_for_connection_storms(serviceFactory):
    """
    --port listens with the system's somaxconn (at least 1024), not
    Twisted's 50, so thousands of clients connecting at once are not made to
    retransmit their SYNs; --listen takes backlog= itself.
    """
    with open("/proc/sys/net/core/somaxconn") as f:
        somaxconn = int(f.read())  # the kernel's cap on any backlog
    service = serviceFactory()
    assert listenQueue(service.port) == somaxconn
    listened = serviceFactory("--listen", "tcp:0:interface=127.0.0.1:backlog=77")
    assert listenQueue(listened.port) == 77


@pytest.mark.parametrize("args", [(), ("--no-connection-log",)], ids=["default", "no-log"])
def test_connections_are_not_logged_by_default_but_refusals_are(serviceFactory, args):
    """
    By default (and with the old --no-connection-log) a connection's open
    and close write no line; a refusal still does.
    """
    from tests.support.wsclient import refusal

    service = serviceFactory(*args)
    with open_(service.url("/quiet"), "echo") as ws:
        ws.send("hi")
        assert ws.recv(timeout=10) == "hi"
    assert refusal(service.url("/"), "nope")[0] == 400
    service.waitForLog(r"refused .*: 400 unsupported subprotocol nope")
    assert not [line for line in service.lines if " open tcp" in line or " close tcp" in line]


def test_log_connections_writes_each_open_and_close(serviceFactory):
    """
    --log-connections logs a line when a connection opens (peer, subprotocol,
    path, id) and one when it closes (id, code, reason, cleanly or not).
    """
    service = serviceFactory("--log-connections")
    with open_(service.url("/loud"), "echo") as ws:
        ws.send("hi")
        assert ws.recv(timeout=10) == "hi"
    service.waitForLog(r"open tcp4:127\.0\.0\.1:\d+ echo /loud as c1$")
    service.waitForLog(r"close tcp4:127\.0\.0\.1:\d+ c1 code=1000 reason=.* clean=True")


def test_the_two_connection_log_options_contradict_each_other():
    """
    --log-connections with --no-connection-log is a usage error that says so.
    """
    from twisted.python import usage

    from wsservice.tap import Options

    with pytest.raises(usage.UsageError, match="contradict"):
        Options().parseOptions(["--log-connections", "--no-connection-log"])
