"""
The soak's judgements, without a service: the memory verdict of
C{bench/soak.py} and the checks its clients (C{bench/soakclients.py}) make
of what they receive, so that a passing soak is not a vacuous one.
"""

from __future__ import annotations

import json
import random

import pytest
from twisted.internet.task import Clock

from bench.soak import PROBLEM, memoryVerdict, percentile
from bench.soakclients import ChatMember, EchoClient, Load


def test_a_flat_noisy_series_passes():
    """
    RSS that wanders by up to 1 MiB around a flat line, with a few spikes,
    is not growth.
    """
    rng = random.Random(7)
    series = [60_000 + rng.uniform(-1024, 1024) for _ in range(120)]
    for spike in (40, 80, 110):
        series[spike] += 8 * 1024
    verdict = memoryVerdict(series, warmup=24)
    assert verdict.ok, verdict


def test_a_leak_of_1_kib_per_churned_connection_fails():
    """
    1 KiB per churned connection at the soak's churn (about 16 a second,
    sampled every 5 s for 10 minutes) is growth, even under noise.
    """
    rng = random.Random(7)
    series = [60_000 + i * 5 * 16 * 1 + rng.uniform(-1024, 1024) for i in range(120)]
    verdict = memoryVerdict(series, warmup=24)
    assert not verdict.ok and verdict.growth > verdict.allowed, verdict


def test_growth_during_warm_up_is_not_judged():
    """
    Memory that rises while the service warms up and then stays is no leak.
    """
    series = [30_000 + 1000 * i for i in range(30)] + [60_000] * 90
    assert memoryVerdict(series, warmup=30).ok


def test_the_tolerance_is_the_larger_of_mib_and_percent():
    """
    The growth allowed is the larger of the absolute and the relative
    tolerance.
    """
    assert memoryVerdict([100_000] * 12, 0, 2, 5).allowed == 5_000
    assert memoryVerdict([10_000] * 12, 0, 2, 5).allowed == 2048


def test_too_few_samples_are_not_judged():
    """
    A series too short after warm-up raises instead of passing.
    """
    with pytest.raises(ValueError):
        memoryVerdict([1, 2, 3, 4, 5, 6, 7], warmup=3)


def test_percentile_by_rank():
    """
    p50 and p99 of 1..100 are 51 and 100; of nothing, None.
    """
    samples = list(range(1, 101))
    assert (percentile(samples, 0.5), percentile(samples, 0.99)) == (51, 100)
    assert percentile([], 0.99) is None


def _event(seq, **kw):
    return json.dumps({"type": "presence", "seq": seq, "epoch": "e1", **kw}).encode()


class _Sent:
    """
    A stand-in for a connection that records what is sent.
    """

    def __init__(self):
        self.sent = []

    def sendMessage(self, payload, isBinary=False):
        self.sent.append((payload, isBinary))


def test_chat_member_counts_gaps_duplicates_and_a_changed_epoch():
    """
    After a welcome at seq 5, events 6, 8, 8 and one of another epoch are
    one gap, one duplicate and one changed epoch.
    """
    load = Load(Clock(), 1)
    member = ChatMember(load, "alice", "room")
    member.connection = _Sent()
    member.received(json.dumps({"type": "welcome", "seq": 5, "epoch": "e1", "id": "c1"}).encode(),
                    False)
    for payload in (_event(6), _event(8), _event(8), _event(9, epoch="e2")):
        member.received(payload, False)
    assert dict(load.tally.errors) == {"chat seq gaps": 1, "chat seq duplicates": 1,
                                       "chat epoch changed": 1}


def test_chat_member_counts_an_unrecovered_resume():
    """
    A reconnect whose gap the room cannot fill is an error.
    """
    load = Load(Clock(), 1)
    member = ChatMember(load, "alice", "room")
    member.epoch, member.seq, member.resuming = "e1", 5, True
    member.received(json.dumps({"type": "resumed", "recovered": False}).encode(), False)
    assert load.tally.errors["chat not recovered"] == 1


def test_echo_client_counts_a_changed_frame():
    """
    A reply whose bytes or frame type differ from what was sent is a
    mismatch; the same frame back is not.
    """
    load = Load(Clock(), 1)
    load.sending = True
    client = EchoClient(load, "e")
    client.connection = _Sent()
    client.send()
    payload, binary = client.connection.sent[-1]
    client.received(payload, binary)
    client.send()
    payload, binary = client.connection.sent[-1]
    client.received(payload + b"x", binary)
    assert load.tally.errors["echo mismatches"] == 1
    assert load.tally.counts["echo round trips"] == 2


def test_the_server_problem_lines_are_warnings_errors_and_tracebacks():
    """
    twistd's warning and error lines and tracebacks count against the soak;
    its info lines (a connection opened or closed) do not.
    """
    prefix = "2026-12-01T13:26:59+0000 [wsservice.websocket.protocol.ServiceProtocol"
    assert PROBLEM.search(f"{prefix}#warn] c3 is too slow to read")
    assert PROBLEM.search(f"{prefix}#error] handler fault")
    assert PROBLEM.search("Traceback (most recent call last):")
    assert not PROBLEM.search(f"{prefix}#info] close tcp4:127.0.0.1:43336 c1 code=1000")
