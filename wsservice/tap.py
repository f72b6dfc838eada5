"""
The C{twistd wsservice} command line: parse, validate, and build the
service.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from twisted.application.service import IService, MultiService
from twisted.python import usage

from wsservice.config import APISettings, AuthSettings, HandlerSettings, Limits, ServiceConfig
from wsservice.interfaces import IAuthenticatorFactory
from wsservice.registry import HandlerRegistry, PluginConflict, describe, discoverPlugins
from wsservice.web.client import bundledClient


def _number(option: str, kind: type, allowZero: bool = False) -> Any:
    """
    A coercer for a numeric option whose errors name the option.
    """

    def coerce(value: str) -> Any:
        try:
            number = kind(value)
        except ValueError:
            raise ValueError(f"--{option}: {value!r} is not a number")
        if number < 0 or (number == 0 and not allowZero):
            raise ValueError(f"--{option}: must be {'at least 0' if allowZero else 'positive'}, not {value}")
        return number

    coerce.coerceDoc = "Must be {}.".format("at least 0" if allowZero else "positive")  # type: ignore[attr-defined]
    return coerce


def listenBacklog() -> int:
    """
    The accept queue for C{--port}: the system's C{somaxconn}, and at least
    1024.  Twisted's default of 50 overflows when thousands of clients
    connect at once, and each overflow costs a client a SYN retransmission
    (a second or more).
    """
    try:
        with open("/proc/sys/net/core/somaxconn") as f:
            return max(1024, int(f.read()))
    except (OSError, ValueError):
        return 1024


def _port(value: str) -> int:
    try:
        return usage.portCoerce(value)
    except ValueError as e:
        raise ValueError(f"--port: {e}")


_port.coerceDoc = usage.portCoerce.coerceDoc  # type: ignore[attr-defined]


class Options(usage.Options):
    """
    Options for C{twistd wsservice}.
    """

    synopsis = "[options]"
    longdesc = (
        "Serve the browser client over HTTP and WebSocket subprotocols "
        "(chat, echo, clock and any installed handler plugin) on the same port."
    )

    optParameters = [
        ["port", "p", 60000, "TCP port to listen on (replaced by --listen).", _port],
        ["interface", "i", "", "Interface to listen on with --port (default: all)."],
        ["static", None, None, "Directory of files served over HTTP (default: the bundled client)."],
        ["default-subprotocol", None, "chat",
         "Handler for clients that offer no subprotocol; empty refuses them."],
        ["clock-interval", None, 1.0, "Seconds between clock ticks.", _number("clock-interval", float)],
        ["history", None, 50, "Chat messages each room keeps for newcomers (0 disables).",
         _number("history", int, allowZero=True)],
        ["history-ttl", None, 86400.0,
         "Seconds a room's history and recovery log outlive its last message or join.",
         _number("history-ttl", float)],
        ["recovery", None, 1000,
         "Events each room keeps for clients that reconnect with ?since= (0 disables "
         "recovery: they get a fresh welcome).", _number("recovery", int, allowZero=True)],
        ["presence-list", None, 100,
         "Members per page in a chat welcome and a members request, and the most names a "
         "presence event lists per kind.", _number("presence-list", int)],
        ["presence-interval", None, 0.25,
         "Seconds over which a room's joins, leaves and renames are gathered into one "
         "presence event.", _number("presence-interval", float)],
        ["presence-limit", None, 1000,
         "Rooms above this many members send presence events with counts only, no names. "
         "0 is unlimited.", _number("presence-limit", int, allowZero=True)],
        ["max-message-size", None, 1024 * 1024,
         "Largest message accepted, in bytes; larger ones close with 1009.", _number("max-message-size", int)],
        ["max-send-buffer", None, 4 * 1024 * 1024,
         "Bytes that may wait unsent to one client before it is closed with 4001 (too slow).",
         _number("max-send-buffer", int)],
        ["max-messages-per-second", None, None,
         "Messages per second one client may send on average (bursts of twice that), for "
         "every subprotocol; a client over it is read more slowly, and closed with 4002 if "
         "it stays over for --rate-limit-grace. 0 disables. Default: each handler's own "
         "(chat 100, echo and clock none).", _number("max-messages-per-second", float, allowZero=True)],
        ["rate-limit-grace", None, 5.0,
         "Seconds a client may stay over its message rate (read only as fast as the rate "
         "allows) before it is closed with 4002.", _number("rate-limit-grace", float)],
        ["max-connections", None, 10000,
         "Open WebSocket connections per process; further handshakes get 503. 0 disables.",
         _number("max-connections", int, allowZero=True)],
        ["ping-interval", None, 30.0, "Seconds between keepalive pings (0 disables).",
         _number("ping-interval", float, allowZero=True)],
        ["ping-timeout", None, 10.0, "Seconds to wait for a pong before closing.", _number("ping-timeout", float)],
        ["open-handshake-timeout", None, 10.0,
         "Seconds a client may take from connecting to sending its whole request head; "
         "then it is dropped.", _number("open-handshake-timeout", float)],
        ["close-handshake-timeout", None, 5.0,
         "Seconds to wait for a peer's close frame (or its TCP close) after ours; "
         "then it is dropped.", _number("close-handshake-timeout", float)],
        ["shutdown-timeout", None, 5.0,
         "Seconds to wait for clients' closing handshakes on shutdown.", _number("shutdown-timeout", float, allowZero=True)],
        ["broker", None, None,
         "redis://HOST:PORT/DB, or redis+sentinel://HOST:PORT[,HOST:PORT...]/MASTER?db=N "
         "for the master that Sentinel names (followed on failover): share chat rooms "
         "with every process using the same Redis (default: rooms live in this process)."],
        ["auth", None, None,
         "Who clients are: jwt (signed tokens), hook (ask --auth-url) or an installed "
         "authenticator plugin. Default: anonymous, or what the --auth-* options imply."],
        ["auth-secret-file", None, None, "File holding the shared secret of HS256 tokens."],
        ["auth-public-key", None, None,
         "File holding a PEM public key or a JWKS key set, for RS256, ES256, EdDSA tokens."],
        ["auth-algorithm", None, None,
         "The one algorithm tokens must be signed with (default: the key's; never the token's)."],
        ["auth-audience", None, None, "The aud claim tokens must carry."],
        ["auth-issuer", None, None, "The iss claim tokens must carry."],
        ["auth-url", None, None,
         "The application's endpoint asked who a client is (--auth hook): it gets the "
         "request's forwarded headers as JSON and answers with the identity, 401 or 403."],
        ["auth-forward-headers", None, "Cookie,Authorization",
         "Request headers sent to --auth-url, comma-separated."],
        ["auth-timeout", None, 5.0,
         "Seconds --auth-url may take; then the handshake gets 503.", _number("auth-timeout", float)],
        ["auth-cookie", None, None, "A cookie that may carry the token."],
        ["auth-grace", None, 30.0,
         "Seconds a connection outlives its token's expiry, to refresh it, before it is "
         "closed with 4100.", _number("auth-grace", float, allowZero=True)],
        ["workers", None, 1,
         "Worker processes sharing the listeners, restarted if they die; more than 1 "
         "needs --broker.", _number("workers", int)],
    ]
    optFlags = [
        ["list-handlers", None, "Print the available subprotocol handlers and exit."],
        ["permessage-deflate", None, "Accept the permessage-deflate compression extension."],
        ["auth-allow-query", None,
         "Also accept the token as ?token= (it then shows in URLs, browser histories and "
         "proxies' logs)."],
        ["log-connections", None,
         "Log each connection's open and close and each HTTP request. Off by default: "
         "refusals, limits, warnings and faults are always logged, and at thousands of "
         "handshakes a second the open line alone costs a quarter of a handshake's CPU."],
        ["no-connection-log", None,
         "The default (connections are not logged); kept so that existing command lines "
         "still work."],
    ]

    def __init__(self) -> None:
        super().__init__()
        self["listen"] = []
        self["allowed-origin"] = []
        self["api-key-file"] = []
        self["api-listen"] = []
        self.registry: HandlerRegistry | None = None

    def opt_listen(self, description: str) -> None:
        """
        Listen on a Twisted endpoint, e.g. tcp:8080:backlog=4096, ssl:8443:privateKey=key.pem:certKey=cert.pem or unix:/run/ws.sock. Repeatable; replaces --port and --interface. Give tcp: and ssl: a backlog= for many clients connecting at once (Twisted's default is 50; --port uses the system's somaxconn, at least 1024).
        """
        self["listen"].append(description)

    opt_l = opt_listen

    def opt_allowed_origin(self, pattern: str) -> None:
        """
        Also allow browser pages from this origin (wildcards with *, e.g. https://*.example.com). Repeatable. Always allowed: pages served by this service and clients that send no Origin.
        """
        self["allowed-origin"].append(pattern)

    def opt_api_key_file(self, path: str) -> None:
        """
        Serve the backend API under /api, opened by the keys in this file (one per line, at least 16 characters; reread when it changes, to rotate keys without a restart). Repeatable.
        """
        self["api-key-file"].append(path)

    def opt_api_listen(self, description: str) -> None:
        """
        Serve the backend API on this endpoint instead of under /api of the public listeners, e.g. tcp:8081:interface=127.0.0.1. Repeatable; needs --api-key-file.
        """
        self["api-listen"].append(description)

    def opt_list_handlers(self) -> None:
        """
        Print each available subprotocol, its description and its module, then exit.
        """
        registry = self._registry()
        for name, factory in registry.factories.items():
            print(f"{name}\t{factory.description}\t({describe(factory)})")
        sys.exit(0)

    def _registry(self) -> HandlerRegistry:
        if self.registry is None:
            try:
                self.registry = HandlerRegistry.fromPlugins(discoverPlugins())
            except PluginConflict as e:
                raise usage.UsageError(str(e))
        return self.registry

    def postOptions(self) -> None:
        if self["log-connections"] and self["no-connection-log"]:
            raise usage.UsageError("--log-connections and --no-connection-log contradict "
                                   "each other; connections are not logged by default")
        registry = self._registry()
        default = self["default-subprotocol"] or None
        if default is not None and default not in registry.factories:
            raise usage.UsageError(
                f"--default-subprotocol: no handler for {default!r}; "
                f"available: {', '.join(registry.names)}"
            )
        if self["static"] is not None:
            static = Path(self["static"])
            if not (static.is_dir()):
                raise usage.UsageError(f"--static: {static} is not a directory")
        elif bundledClient() is None:
            raise usage.UsageError("--static: the bundled client is missing; name a directory")
        if not self["listen"]:
            interface = self["interface"].replace(":", "\\:")
            self["listen"] = [
                f"tcp:{self['port']}" + (f":interface={interface}" if interface else "")
                + f":backlog={listenBacklog()}"
            ]
        for description in self["listen"]:
            _checkEndpoint(description)
        self._checkScaling()
        self._checkAuth()
        self._checkAPI()

    def _checkAPI(self) -> None:
        if self["api-listen"] and not self["api-key-file"]:
            raise usage.UsageError("--api-listen needs --api-key-file: the API has no keys")
        if self["api-listen"] and self["workers"] > 1:
            raise usage.UsageError(
                "--api-listen cannot be shared by --workers yet; serve the API under /api "
                "of the public listeners instead")
        from wsservice.api.keys import KeyFileError, readKeys

        for path in self["api-key-file"]:
            try:
                readKeys(Path(path))
            except KeyFileError as e:
                raise usage.UsageError(f"--api-key-file: {e}")
        for description in self["api-listen"]:
            _checkEndpoint(description, "--api-listen")

    def _checkScaling(self) -> None:
        if self["broker"] is not None:
            from wsservice.rooms.redis.wire import BrokerAddress

            try:
                BrokerAddress.fromURL(self["broker"])
            except ValueError as e:
                raise usage.UsageError(f"--broker: {e}")
        if self["workers"] > 1:
            if self["broker"] is None:
                raise usage.UsageError(
                    "--workers needs --broker: each worker has its own rooms, so without "
                    "a broker people in the same room on different workers would not "
                    "see each other"
                )
            from wsservice.workers.supervisor import checkListen

            for description in self["listen"]:
                try:
                    checkListen(description)
                except ValueError as e:
                    raise usage.UsageError(f"--workers: {e}")

    def _checkAuth(self) -> None:
        method = self["auth"]
        if method is None:
            if self["auth-url"]:
                method = "hook"
            elif self["auth-secret-file"] or self["auth-public-key"]:
                method = "jwt"
        self["auth"] = method
        for option in ("auth-secret-file", "auth-public-key"):
            if self[option] is not None and not Path(self[option]).is_file():
                raise usage.UsageError(f"--{option}: {self[option]} is not a readable file")
        if method is None:
            return
        factories = {p.name: p for p in discoverPlugins(interface=IAuthenticatorFactory)}
        if method not in factories:
            raise usage.UsageError(
                f"--auth: no authenticator {method!r}; available: {', '.join(sorted(factories))}")
        self.authenticator = factories[method]
        from twisted.internet import reactor

        try:
            factories[method](self.authSettings(), reactor)
        except (ValueError, OSError) as e:
            raise usage.UsageError(str(e))

    def authSettings(self) -> AuthSettings:
        """
        The validated C{--auth-*} options.
        """
        return AuthSettings(
            method=self["auth"],
            secretFile=Path(self["auth-secret-file"]) if self["auth-secret-file"] else None,
            publicKeyFile=Path(self["auth-public-key"]) if self["auth-public-key"] else None,
            algorithm=self["auth-algorithm"],
            audience=self["auth-audience"],
            issuer=self["auth-issuer"],
            url=self["auth-url"],
            forwardHeaders=tuple(h.strip().lower() for h in self["auth-forward-headers"].split(",")
                                 if h.strip()),
            timeout=self["auth-timeout"],
            cookie=self["auth-cookie"],
            allowQuery=bool(self["auth-allow-query"]),
            grace=self["auth-grace"],
        )

    def toConfig(self) -> ServiceConfig:
        """
        The validated options as a L{ServiceConfig}.
        """
        return ServiceConfig(
            listen=tuple(self["listen"]),
            staticDir=Path(self["static"]) if self["static"] else bundledClient(),
            defaultSubprotocol=self["default-subprotocol"] or None,
            handlers=HandlerSettings(
                clockInterval=self["clock-interval"], historySize=self["history"],
                historyTTL=self["history-ttl"], recoverySize=self["recovery"],
                presenceList=self["presence-list"], presenceInterval=self["presence-interval"],
                presenceLimit=self["presence-limit"],
            ),
            limits=Limits(
                maxMessageSize=self["max-message-size"],
                maxSendBuffer=self["max-send-buffer"],
                maxMessagesPerSecond=self["max-messages-per-second"],
                rateLimitGrace=self["rate-limit-grace"],
                maxConnections=self["max-connections"],
                pingInterval=self["ping-interval"],
                pingTimeout=self["ping-timeout"],
                openHandshakeTimeout=self["open-handshake-timeout"],
                closeHandshakeTimeout=self["close-handshake-timeout"],
                shutdownTimeout=self["shutdown-timeout"],
            ),
            allowedOrigins=tuple(self["allowed-origin"]),
            perMessageDeflate=bool(self["permessage-deflate"]),
            logConnections=bool(self["log-connections"]),
            auth=self.authSettings(),
            api=APISettings(keyFiles=tuple(Path(p) for p in self["api-key-file"]),
                            listen=tuple(self["api-listen"])),
            brokerURL=self["broker"],
            workers=self["workers"],
        )


def _checkEndpoint(description: str, option: str = "--listen") -> None:
    """
    Parse an endpoint description the way the listener will, so a bad one
    (a typo, an unreadable certificate) is a usage error before anything
    starts.
    """
    from twisted.internet import reactor
    from twisted.internet.endpoints import serverFromString

    try:
        serverFromString(reactor, description)
    except Exception as e:
        raise usage.UsageError(f"{option} {description}: {e}")


def makeService(options: Options) -> IService:
    """
    Build the service from parsed options (called by twistd).  Building
    changes nothing about the process; its settings (the open-file limit,
    clean exits on signals) are applied when the service starts.
    """
    from twisted.internet import reactor

    from wsservice.process import ProcessSettings
    from wsservice.service import buildService

    config = options.toConfig()
    top = MultiService()
    ProcessSettings(reactor, config.limits.maxConnections).setServiceParent(top)
    if config.workers > 1:
        from wsservice.workers.supervisor import WorkerSupervisor

        WorkerSupervisor(config, reactor).setServiceParent(top)
    else:
        buildService(config, options._registry(), reactor).setServiceParent(top)
    return top
