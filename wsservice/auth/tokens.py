"""
C{--auth jwt}: signed tokens (JWT, with PyJWT), checked in the process.

The key is configured (C{--auth-secret-file} for HS256;
C{--auth-public-key} with a PEM public key or a JWKS file for RS256, ES256,
EdDSA and the like), and so is the algorithm: never the token's own
C{alg}, so C{alg: none} and HS256-signed-with-the-public-key tokens are
refused.  C{--auth-audience} and C{--auth-issuer}, when given, must match.

Claims::

    sub     the user id (required)
    exp     when the token expires (required)
    name    the display name (default: sub); used instead of ?name=
    rooms   the rooms this token opens, as * wildcards (default: every room)
    info    public information other members see (an object)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jwt
from twisted.internet.defer import Deferred, fail, succeed
from twisted.plugin import IPlugin
from zope.interface import implementer

from wsservice.auth.identity import AuthRefused, Identity
from wsservice.interfaces import IAuthenticator, IAuthenticatorFactory, IRequest

def identityFromClaims(claims: dict[str, Any]) -> Identity:
    """
    The identity verified claims describe.

    @raise AuthRefused: 401 when a claim has the wrong type.
    """
    sub, name, rooms, info = (claims.get(k) for k in ("sub", "name", "rooms", "info"))
    if not isinstance(sub, str) or not sub:
        raise AuthRefused(401, "the token's sub is not a user id")
    if name is not None and not isinstance(name, str):
        raise AuthRefused(401, "the token's name is not a string")
    if rooms is not None and not (isinstance(rooms, list) and all(isinstance(r, str) for r in rooms)):
        raise AuthRefused(401, "the token's rooms is not a list of room patterns")
    if info is not None and not isinstance(info, dict):
        raise AuthRefused(401, "the token's info is not an object")
    expires = claims.get("exp")
    return Identity(user=sub, name=name or sub, rooms=tuple(rooms) if rooms is not None else None,
                    expires=float(expires) if expires is not None else None, info=info or {})


@implementer(IAuthenticator)
class JWTAuthenticator:
    """
    Checks signed tokens with one configured key (or a JWKS key set) and
    algorithm.
    """

    def __init__(self, key: Any, algorithm: str, audience: str | None = None,
                 issuer: str | None = None, keySet: jwt.PyJWKSet | None = None,
                 leeway: float = 0) -> None:
        self._key = key
        self._keySet = keySet
        self._algorithms = [algorithm]
        self._audience = audience
        self._issuer = issuer
        self._leeway = leeway

    @classmethod
    def fromSettings(cls, settings: Any) -> "JWTAuthenticator":
        """
        Read the key the settings name.

        @raise ValueError: naming the option that is wrong.
        """
        if settings.secretFile and settings.publicKeyFile:
            raise ValueError("--auth-secret-file and --auth-public-key: give one of them")
        common = dict(audience=settings.audience, issuer=settings.issuer)
        if settings.secretFile:
            secret = Path(settings.secretFile).read_bytes().strip()
            if len(secret) < 32:
                raise ValueError("--auth-secret-file: the secret is shorter than 32 bytes")
            algorithm = settings.algorithm or "HS256"
            if not algorithm.startswith("HS"):
                raise ValueError(f"--auth-algorithm {algorithm}: a shared secret takes HS256/384/512")
            return cls(secret, algorithm, **common)
        if not settings.publicKeyFile:
            raise ValueError("--auth jwt needs --auth-secret-file or --auth-public-key")
        text = Path(settings.publicKeyFile).read_text()
        if text.lstrip().startswith("{"):
            try:
                keySet = jwt.PyJWKSet.from_json(text)
            except (jwt.PyJWKSetError, json.JSONDecodeError, jwt.InvalidKeyError) as e:
                raise ValueError(f"--auth-public-key: not a JWKS key set: {e}")
            # A key's alg, or the one its type implies (RSA: RS256, P-256: ES256, ...).
            names = {k.algorithm_name for k in keySet.keys}
            algorithm = settings.algorithm or (names.pop() if len(names) == 1 else None)
            if not algorithm or algorithm.startswith("HS"):
                raise ValueError("--auth-public-key: its keys differ; say the algorithm with "
                                 "--auth-algorithm")
            return cls(None, algorithm, keySet=keySet, **common)
        try:
            key = jwt.PyJWK.from_dict(_jwkOfPEM(text))
        except (ValueError, jwt.InvalidKeyError, jwt.PyJWKError) as e:
            raise ValueError(f"--auth-public-key: not a PEM public key: {e}")
        algorithm = settings.algorithm or key.algorithm_name
        if algorithm.startswith("HS"):
            raise ValueError("--auth-public-key: say the algorithm with --auth-algorithm")
        return cls(key.key, algorithm, **common)

    def _decode(self, token: str) -> Identity:
        key = self._key
        try:
            if self._keySet is not None:
                kid = jwt.get_unverified_header(token).get("kid")
                matching = [k for k in self._keySet.keys if k.key_id == kid] if kid else self._keySet.keys
                if len(matching) != 1:
                    raise AuthRefused(401, "the token's kid names no key we know")
                key = matching[0].key
            claims = jwt.decode(
                token, key, algorithms=self._algorithms, audience=self._audience,
                issuer=self._issuer, leeway=self._leeway,
                options={"require": ["exp", "sub"], "verify_aud": self._audience is not None})
        except jwt.ExpiredSignatureError:
            raise AuthRefused(401, "the token has expired")
        except jwt.InvalidAudienceError:
            raise AuthRefused(401, "the token is not for this service (audience)")
        except jwt.InvalidIssuerError:
            raise AuthRefused(401, "the token is not from the expected issuer")
        except jwt.MissingRequiredClaimError as e:
            raise AuthRefused(401, f"the token has no {e.claim} claim")
        except jwt.InvalidTokenError:
            # Wrong key, alg none, another algorithm, garbage: one answer.
            raise AuthRefused(401, "the token is not valid")
        return identityFromClaims(claims)

    def authenticate(self, request: IRequest, token: str | None) -> Deferred[Identity]:
        if not token:
            return fail(AuthRefused(401, "a token is required"))
        try:
            return succeed(self._decode(token))
        except AuthRefused as e:
            return fail(e)

    def refresh(self, identity: Identity, token: str) -> Deferred[Identity]:
        try:
            new = self._decode(token)
        except AuthRefused as e:
            return fail(e)
        if new.user != identity.user:
            return fail(AuthRefused(403, "the token is for another user"))
        return succeed(new)


def _jwkOfPEM(text: str) -> dict[str, Any]:
    """
    A PEM public key as a JWK dict, so PyJWT names its type.
    """
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    public = load_pem_public_key(text.encode("ascii"))
    for algorithm in (jwt.algorithms.RSAAlgorithm, jwt.algorithms.ECAlgorithm,
                      jwt.algorithms.OKPAlgorithm):
        try:
            return json.loads(algorithm.to_jwk(public))
        except Exception:
            continue
    raise ValueError("an RSA, EC or Ed25519 public key is needed")


@implementer(IPlugin, IAuthenticatorFactory)
class JWTPlugin:
    """
    The C{jwt} authenticator plugin.
    """

    name = "jwt"
    description = "signed tokens (JWT) checked with --auth-secret-file or --auth-public-key"

    def __call__(self, settings: Any, reactor: Any) -> JWTAuthenticator:
        return JWTAuthenticator.fromSettings(settings)
