"""
The HTTP side of the port: WebSocket upgrades on any path, the browser
client as static files, C{/healthz}, C{/metrics} and, when asked for, the
backend API under C{/api}.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from autobahn.twisted.resource import WebSocketResource
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from twisted.web.resource import Resource
from twisted.web.server import Request
from twisted.web.static import File

from wsservice.metrics import ServiceMetrics
from wsservice.websocket.factory import ServiceFactory


class HealthResource(Resource):
    """
    C{GET /healthz}: 200 while serving, 503 while shutting down.
    """

    isLeaf = True

    def __init__(self, healthy: Callable[[], tuple[bool, str]]) -> None:
        super().__init__()
        self._healthy = healthy

    def render_GET(self, request: Request) -> bytes:
        ok, detail = self._healthy()
        request.setResponseCode(200 if ok else 503)
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        request.setHeader(b"cache-control", b"no-store")
        return detail.encode("utf-8") + b"\n"


class MetricsResource(Resource):
    """
    C{GET /metrics} in the Prometheus text format.

    Rendered in the reactor thread: prometheus_client's own Twisted resource
    imports the global reactor and renders through a WSGI thread pool, for a
    page that takes microseconds to build.
    """

    isLeaf = True

    def __init__(self, metrics: ServiceMetrics) -> None:
        super().__init__()
        self._metrics = metrics

    def render_GET(self, request: Request) -> bytes:
        request.setHeader(b"content-type", CONTENT_TYPE_LATEST.encode("ascii"))
        return generate_latest(self._metrics.registry)


class UpgradeAwareRoot(Resource):
    """
    Sends a request with C{Upgrade: websocket} on any path to the WebSocket
    resource, and every other request down the ordinary resource tree.
    """

    def __init__(self, websocket: Resource, tree: Resource) -> None:
        super().__init__()
        self._websocket = websocket
        self._tree = tree

    def getChildWithDefault(self, path: bytes, request: Request) -> Resource:
        if b"websocket" in (request.getHeader(b"upgrade") or b"").lower():
            # The whole path stays available to the handler (chat rooms).
            request.postpath.clear()
            return self._websocket
        return self._tree.getChildWithDefault(path, request)

    def render(self, request: Request) -> bytes:
        return self._tree.render(request)


def buildRoot(
    factory: ServiceFactory,
    staticDir: Path,
    metrics: ServiceMetrics,
    healthy: Callable[[], tuple[bool, str]],
    api: Resource | None = None,
) -> Resource:
    """
    Assemble the resource tree served on every listener, with the backend
    API under C{/api} if it is given.
    """
    files = File(str(staticDir))
    files.indexNames = ["index.html"]
    files.putChild(b"healthz", HealthResource(healthy))
    files.putChild(b"metrics", MetricsResource(metrics))
    if api is not None:
        files.putChild(b"api", api)
    return UpgradeAwareRoot(WebSocketResource(factory), files)
