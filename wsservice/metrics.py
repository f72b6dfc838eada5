"""
Prometheus metrics for the service, in a registry of its own (never the
library's global one), served at C{/metrics}.
"""

from __future__ import annotations

from typing import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge


class _PerSubprotocol:
    """
    A metric's labelled children, looked up once per subprotocol instead of
    on every message.
    """

    def __init__(self, metric: Counter | Gauge) -> None:
        self._metric = metric
        self._children: dict[str, Counter | Gauge] = {}

    def __getitem__(self, subprotocol: str) -> Counter | Gauge:
        child = self._children.get(subprotocol)
        if child is None:
            child = self._children[subprotocol] = self._metric.labels(subprotocol)
        return child


class ServiceMetrics:
    """
    The counters and gauges the WebSocket layer and the rooms update.
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self._open = _PerSubprotocol(
            Gauge("wsservice_connections_open", "Open WebSocket connections.",
                  ["subprotocol"], registry=r))
        self._accepted = _PerSubprotocol(
            Counter("wsservice_handshakes_accepted", "Opening handshakes accepted.",
                    ["subprotocol"], registry=r))
        self._refused = Counter(
            "wsservice_handshakes_refused", "Opening handshakes refused, by reason.",
            ["reason"], registry=r)
        self._messagesIn = _PerSubprotocol(
            Counter("wsservice_messages_received", "Messages received.",
                    ["subprotocol"], registry=r))
        self._bytesIn = _PerSubprotocol(
            Counter("wsservice_received_bytes", "Message payload bytes received.",
                    ["subprotocol"], registry=r))
        self._messagesOut = _PerSubprotocol(
            Counter("wsservice_messages_sent", "Messages sent.",
                    ["subprotocol"], registry=r))
        self._bytesOut = _PerSubprotocol(
            Counter("wsservice_sent_bytes", "Message payload bytes sent.",
                    ["subprotocol"], registry=r))
        self._closes = Counter(
            "wsservice_closes", "Closed connections, by close code.",
            ["subprotocol", "code"], registry=r)
        self._roomMessages = Counter(
            "wsservice_room_deliveries", "Room events delivered to members.", registry=r)
        self._roomBytes = Counter(
            "wsservice_room_delivered_bytes", "Room event bytes delivered to members.",
            registry=r)
        self._rateLimited = Counter(
            "wsservice_rate_limited",
            "Times a connection went over its message rate and was read more slowly.",
            registry=r)
        self._slow = Counter(
            "wsservice_slow_reader_closes",
            "Connections closed because their send buffer overflowed.", registry=r)
        self._errors = _PerSubprotocol(
            Counter("wsservice_handler_errors", "Exceptions raised by handlers.",
                    ["subprotocol"], registry=r))
        self._rooms = Gauge("wsservice_rooms", "Rooms held in memory.", registry=r)
        self._draining = Gauge(
            "wsservice_draining", "1 while the service shuts down.", registry=r)

    def watchRooms(self, count: Callable[[], int]) -> None:
        """
        Read the number of rooms from C{count} at each scrape.
        """
        self._rooms.set_function(count)

    def watchBroker(self, connected: Callable[[], bool], queued: Callable[[], int]) -> None:
        """
        Read the broker's state at each scrape: 1 while Redis is reachable,
        and how many publishes wait for it.
        """
        Gauge("wsservice_broker_connected", "1 while the Redis broker is reachable.",
              registry=self.registry).set_function(lambda: float(connected()))
        Gauge("wsservice_broker_queued", "Publishes waiting for the broker to come back.",
              registry=self.registry).set_function(queued)

    def handshakeRefused(self, reason: str) -> None:
        self._refused.labels(reason).inc()

    def opened(self, subprotocol: str) -> None:
        self._accepted[subprotocol].inc()
        self._open[subprotocol].inc()

    def closedWith(self, subprotocol: str, code: int | None) -> None:
        self._open[subprotocol].dec()
        self._closes.labels(subprotocol, str(code) if code is not None else "none").inc()

    def received(self, subprotocol: str, size: int) -> None:
        self._messagesIn[subprotocol].inc()
        self._bytesIn[subprotocol].inc(size)

    def sent(self, subprotocol: str, size: int, count: int = 1) -> None:
        self._messagesOut[subprotocol].inc(count)
        self._bytesOut[subprotocol].inc(size * count)

    def roomDelivered(self, size: int, count: int) -> None:
        self._roomMessages.inc(count)
        self._roomBytes.inc(size * count)

    def rateLimited(self) -> None:
        self._rateLimited.inc()

    def slowReaderClosed(self) -> None:
        self._slow.inc()

    def handlerError(self, subprotocol: str) -> None:
        self._errors[subprotocol].inc()

    def draining(self) -> None:
        self._draining.set(1)
