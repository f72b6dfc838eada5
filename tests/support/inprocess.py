"""
The service tree in the test's own reactor (pytest-twisted), for tests and
tools that must look inside it: it listens on loopback and gives its port.
"""

from __future__ import annotations

from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import serverFromString

from wsservice.config import ServiceConfig
from wsservice.registry import HandlerRegistry, discoverPlugins
from wsservice.service import WebSocketService, buildService


class RecordedPort(Service):
    """
    Listens on one endpoint and fires L{bound} with the listening port.
    """

    def __init__(self, reactor: Any, description: str, factory: Any) -> None:
        self._reactor = reactor
        self._description = description
        self._factory = factory
        self.bound: Deferred[Any] = Deferred()
        self._port: Any = None

    def startService(self) -> None:
        super().startService()

        def listening(port: Any) -> None:
            self._port = port
            self.bound.callback(port)

        serverFromString(self._reactor, self._description).listen(self._factory).addCallbacks(
            listening, self.bound.errback)

    def stopService(self) -> Any:
        super().stopService()
        return self._port.stopListening() if self._port is not None else None


def startInProcess(config: ServiceConfig, reactor: Any) -> Deferred[tuple[WebSocketService, Any]]:
    """
    Build and start the service for C{config} in C{reactor}; fire with the
    service and its (first) listening port.
    """
    recorded: list[RecordedPort] = []

    def listeners(config: ServiceConfig, factory: Any, reactor: Any) -> list[RecordedPort]:
        recorded[:] = [RecordedPort(reactor, d, factory) for d in config.listen]
        return list(recorded)

    service = buildService(config, HandlerRegistry.fromPlugins(discoverPlugins()), reactor,
                           listeners=listeners)
    service.startService()
    return recorded[0].bound.addCallback(lambda port: (service, port))
