"""
Unit tests of the scaling and recovery options: parsed into the
config, and refused with a reason when they cannot work.
"""

from __future__ import annotations

import pytest
from twisted.python import usage

from wsservice.tap import Options


def parse(*args: str) -> Options:
    options = Options()
    options.parseOptions(list(args))
    return options


def test_broker_and_workers_reach_the_config():
    """
    --broker and --workers end up in the ServiceConfig unchanged.
    """
    config = parse("--broker", "redis://127.0.0.1:6379/1", "--workers", "3").toConfig()
    assert (config.brokerURL, config.workers) == ("redis://127.0.0.1:6379/1", 3)
    assert (parse().toConfig().brokerURL, parse().toConfig().workers) == (None, 1)


@pytest.mark.parametrize("args, reason", [
    (("--workers", "2"), "--workers needs --broker"),
    (("--broker", "http://x/0"), "--broker: "),
    (("--broker", "redis://x/0", "--workers", "2", "--listen", "unix:/tmp/ws.sock"),
     "workers can share only tcp:PORT listeners"),
    (("--workers", "0"), "--workers: must be positive"),
])
def test_unworkable_scaling_options_are_usage_errors(args, reason):
    """
    Options that cannot work together are refused with a message naming
    the problem.
    """
    with pytest.raises(usage.UsageError, match=reason):
        parse(*args)


def test_recovery_options_reach_the_rooms():
    """
    --history-ttl and --recovery become the hub's ttl and log size, and 0
    turns recovery off.
    """
    from twisted.internet.task import Clock

    from wsservice.metrics import ServiceMetrics
    from wsservice.service import buildRooms

    config = parse("--history-ttl", "60", "--recovery", "0").toConfig()
    assert (config.handlers.historyTTL, config.handlers.recoverySize) == (60.0, 0)
    rooms = buildRooms(config, Clock(), ServiceMetrics())
    assert (rooms._ttl, rooms._logSize) == (60.0, 0)
    defaults = parse().toConfig().handlers
    assert (defaults.historyTTL, defaults.recoverySize) == (86400.0, 1000)
