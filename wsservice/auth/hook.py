"""
C{--auth hook}: ask the application's backend who a client is, so an app
with cookie sessions (Django, Rails, ...) needs no tokens at all.

For every handshake the service POSTs JSON to C{--auth-url}::

    {"path": "/kitchen", "query": {"name": ["x"]}, "peer": "tcp4:10.0.0.7:51234",
     "origin": "https://app.example.com", "token": null,
     "headers": {"cookie": "sessionid=..."}}

with the request headers named by C{--auth-forward-headers} (default
C{Cookie,Authorization}) and the token from the usual carriers, if any.
The backend answers 200 with the identity::

    {"user": "42", "name": "Alice", "rooms": ["kitchen", "team-*"],
     "expires": 1796128000, "info": {"avatar": "/a/42.png"}}

(C{user} required; C{rooms} absent means every room; C{expires} absent
means never), or 401/403 with C{{"reason": "..."}} (or plain text), which
the client gets.  Anything else (another status, no answer within
C{--auth-timeout}, a backend that is down) refuses with 503: a failing
backend never admits anyone.  A refresh POSTs C{{"refresh": true, "user":
..., "token": ...}} and must name the same user.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.logger import Logger
from twisted.plugin import IPlugin
from zope.interface import implementer

from wsservice.auth.identity import AuthRefused, Identity
from wsservice.interfaces import IAuthenticator, IAuthenticatorFactory, IRequest


def identityFromJSON(body: Any) -> Identity:
    """
    The identity a backend's 200 answer describes.

    @raise AuthRefused: 503 when it is not one (the backend is broken).
    """
    if not isinstance(body, dict) or not isinstance(body.get("user"), str) or not body["user"]:
        raise AuthRefused(503, "the authentication backend answered without a user")
    name, rooms, expires, info = (body.get(k) for k in ("name", "rooms", "expires", "info"))
    if (name is not None and not isinstance(name, str)) or (
            rooms is not None and not (isinstance(rooms, list) and all(isinstance(r, str) for r in rooms))) or (
            expires is not None and (isinstance(expires, bool) or not isinstance(expires, (int, float)))) or (
            info is not None and not isinstance(info, dict)):
        raise AuthRefused(503, "the authentication backend's answer is malformed")
    return Identity(user=body["user"], name=name or body["user"],
                    rooms=tuple(rooms) if rooms is not None else None,
                    expires=float(expires) if expires is not None else None, info=info or {})


@implementer(IAuthenticator)
class HookAuthenticator:
    """
    Asks C{url} about each handshake and each refresh, within C{timeout}.
    """

    _log = Logger()

    def __init__(self, url: str, forwardHeaders: tuple[str, ...], timeout: float, reactor: Any,
                 client: Any = None) -> None:
        """
        @param client: a treq-like HTTP client (C{post}); by default treq on
            an C{Agent} of C{reactor}.
        """
        if client is None:
            from treq.client import HTTPClient
            from twisted.web.client import Agent

            client = HTTPClient(Agent(reactor, connectTimeout=timeout))
        self._url = url
        self._forward = tuple(h.lower() for h in forwardHeaders)
        self._timeout = timeout
        self._reactor = reactor
        self._client = client

    @inlineCallbacks
    def _ask(self, body: dict[str, Any]) -> Any:
        try:
            request = self._client.post(self._url, json=body, headers={"Accept": ["application/json"]})
            request.addTimeout(self._timeout, self._reactor)
            response = yield request
            content = yield response.content()
        except Exception as e:
            self._log.warn("authentication backend {url} failed: {why}", url=self._url,
                           why=type(e).__name__ + (f": {e}" if str(e) else ""))
            raise AuthRefused(503, "authentication is unavailable; try again later")
        if response.code in (401, 403):
            raise AuthRefused(response.code, _reason(content) or "not allowed")
        if response.code != 200:
            self._log.warn("authentication backend {url} answered {code}", url=self._url,
                           code=response.code)
            raise AuthRefused(503, "authentication is unavailable; try again later")
        try:
            return identityFromJSON(json.loads(content))
        except ValueError:
            raise AuthRefused(503, "the authentication backend's answer is not JSON")

    def authenticate(self, request: IRequest, token: str | None) -> Deferred[Identity]:
        return self._ask({
            "path": request.path,
            "query": {k: list(v) for k, v in request.query.items()},
            "peer": request.peer,
            "origin": request.origin,
            "token": token,
            "headers": {h: request.headers[h] for h in self._forward if h in request.headers},
        })

    def refresh(self, identity: Identity, token: str) -> Deferred[Identity]:
        def same(new: Identity) -> Identity:
            if new.user != identity.user:
                raise AuthRefused(403, "the token is for another user")
            return new

        return self._ask({"refresh": True, "user": identity.user, "token": token}).addCallback(same)


def _reason(content: bytes) -> str:
    """
    What a backend's refusal says: its JSON C{reason}, or its text, short.
    """
    try:
        body = json.loads(content)
        if isinstance(body, dict) and isinstance(body.get("reason"), str):
            return body["reason"][:200]
    except ValueError:
        pass
    return content.decode("utf-8", "replace").strip()[:200]


@implementer(IPlugin, IAuthenticatorFactory)
class HookPlugin:
    """
    The C{hook} authenticator plugin.
    """

    name = "hook"
    description = "asks the application's backend at --auth-url, forwarding its cookies"

    def __call__(self, settings: Any, reactor: Any) -> HookAuthenticator:
        if not settings.url:
            raise ValueError("--auth hook needs --auth-url")
        return HookAuthenticator(settings.url, settings.forwardHeaders, settings.timeout, reactor)
