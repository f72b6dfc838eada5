"""
Where a token travels in an upgrade request, and taking it out of what the
rest of the service sees.

In this order of precedence: an extra subprotocol C{bearer.<token>}
(base64url, offered beside the real subprotocol: browsers cannot set
headers on a WebSocket, and a URL ends up in logs and histories), an
C{Authorization: Bearer} header, a cookie, and C{?token=} only where
allowed.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from http.cookies import CookieError, SimpleCookie
from typing import Mapping, Sequence

BEARER = "bearer."


@dataclass(frozen=True)
class Carriers:
    """
    Which carriers a deployment accepts besides the subprotocol and the
    C{Authorization} header.

    @ivar cookie: the cookie holding the token, or C{None}.
    @ivar allowQuery: whether C{?token=} is accepted.
    """

    cookie: str | None = None
    allowQuery: bool = False


def splitOffers(offered: Sequence[str]) -> tuple[list[str], str | None]:
    """
    The subprotocols a client offered without any C{bearer.} one, and the
    token the first of those carries (C{None} if none, or if it is not
    base64url).
    """
    real: list[str] = []
    token: str | None = None
    for offer in offered:
        if not offer.startswith(BEARER):
            real.append(offer)
            continue
        if token is None:
            encoded = offer[len(BEARER):]
            try:
                token = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode("utf-8")
            except (binascii.Error, ValueError):
                token = ""
    return real, token


def findToken(fromSubprotocol: str | None, headers: Mapping[str, str],
              query: Mapping[str, Sequence[str]], carriers: Carriers) -> str | None:
    """
    The token of a request, from the first carrier that has one.
    """
    if fromSubprotocol:
        return fromSubprotocol
    scheme, _, credentials = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    if carriers.cookie and "cookie" in headers:
        try:
            jar = SimpleCookie(headers["cookie"])
        except CookieError:
            jar = SimpleCookie()
        if carriers.cookie in jar and jar[carriers.cookie].value:
            return jar[carriers.cookie].value
    if carriers.allowQuery and query.get("token"):
        return query["token"][0]
    return None


def withoutCredentials(headers: Mapping[str, str], query: Mapping[str, Sequence[str]]
                       ) -> tuple[dict[str, str], dict[str, Sequence[str]]]:
    """
    The headers and query a handler sees: no C{Authorization} header and no
    C{token} parameter, so a handler cannot log a token by accident.
    """
    return ({k: v for k, v in headers.items() if k != "authorization"},
            {k: v for k, v in query.items() if k != "token"})
