"""
Graceful shutdown of the real twistd process.
"""

from __future__ import annotations

import signal
import urllib.error
import urllib.request

from tests.support.rawws import RawClient
from tests.support.wsclient import closeCode, open_, refusal


def test_draining_answers_503_and_waits_for_closing_handshakes(serviceFactory):
    """
    During shutdown /healthz answers 503 and new handshakes are refused, a
    peer that never completes its closing handshake still gets a 1001 frame,
    and the process exits 0 once the shutdown timeout has passed.
    """
    service = serviceFactory("--shutdown-timeout", "4")
    stubborn = RawClient(service.port, "/", "echo")
    with open_(service.url(), "chat") as polite:
        service.proc.send_signal(signal.SIGTERM)
        service.waitForLog(r"shutting down: closing 2 connections")
        # Read it at once: once the timeout drops the connection, an unread
        # close frame may be lost with the reset.
        assert stubborn.closeCode() == (1001, "server shutting down")
        try:
            urllib.request.urlopen(service.url("/healthz", "http"), timeout=10)
            raise AssertionError("healthz answered 200 while draining")
        except urllib.error.HTTPError as e:
            assert e.code == 503
        status, body = refusal(service.url(), "echo")
        assert status == 503 and "shutting down" in body
        assert closeCode(polite) == (1001, "server shutting down")
    service.waitForLog(r"shutdown timeout: dropping 1 connections", timeout=30)
    assert service.proc.wait(timeout=30) == 0
    stubborn.close()


def test_sigint_also_exits_cleanly(serviceFactory):
    """
    SIGINT (Ctrl-C) shuts down as gracefully as SIGTERM and exits 0.
    """
    service = serviceFactory()
    with open_(service.url(), "echo") as ws:
        assert service.stop(signal.SIGINT) == 0
        assert closeCode(ws)[0] == 1001
