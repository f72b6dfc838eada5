"""
The authenticators and token carriers, with real tokens signed here by
PyJWT and real keys made by cryptography.
"""

from __future__ import annotations

import base64
import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from zope.interface.verify import verifyObject

from wsservice.auth.carriers import Carriers, findToken, splitOffers, withoutCredentials
from wsservice.auth.hook import HookPlugin, identityFromJSON
from wsservice.auth.identity import AuthRefused, Identity
from wsservice.auth.tokens import JWTAuthenticator, JWTPlugin
from wsservice.config import AuthSettings
from wsservice.interfaces import IAuthenticator, IAuthenticatorFactory
from wsservice.testing import FakeRequest

SECRET = b"s" * 32


def claims(**extra) -> dict:
    return {"sub": "u1", "exp": int(time.time()) + 86400, **extra}


def outcome(authenticator, token):
    """
    The identity, or the (code, reason) of the refusal.
    """
    results = []
    authenticator.authenticate(FakeRequest(), token).addBoth(results.append)
    (result,) = results
    if isinstance(result, Identity):
        return result
    return (result.value.code, result.value.reason)


@pytest.fixture
def hs256(tmp_path) -> JWTAuthenticator:
    secret = tmp_path / "secret"
    secret.write_bytes(SECRET)
    return JWTAuthenticator.fromSettings(AuthSettings(method="jwt", secretFile=secret,
                                                      audience="chat", issuer="app"))


def test_the_built_in_plugins_provide_their_interfaces(tmp_path):
    """
    jwt and hook are authenticator plugins whose products are authenticators.
    """
    secret = tmp_path / "secret"
    secret.write_bytes(SECRET)
    for plugin, settings in ((JWTPlugin(), AuthSettings(secretFile=secret)),
                             (HookPlugin(), AuthSettings(url="http://127.0.0.1:1/who"))):
        verifyObject(IAuthenticatorFactory, plugin)
        verifyObject(IAuthenticator, plugin(settings, None))


def test_a_valid_token_gives_its_identity(hs256):
    """
    sub, name, rooms, info and exp become the identity.
    """
    token = jwt.encode(claims(aud="chat", iss="app", name="Alice", rooms=["team-*"],
                              info={"avatar": "/a.png"}), SECRET, "HS256")
    identity = outcome(hs256, token)
    assert (identity.user, identity.name, identity.rooms) == ("u1", "Alice", ("team-*",))
    assert identity.info == {"avatar": "/a.png"} and identity.expires > time.time()
    assert identity.allows("team-red") and not identity.allows("kitchen")


@pytest.mark.parametrize("token, code, words", [
    (None, 401, "a token is required"),
    (jwt.encode({"sub": "u1", "exp": 1, "aud": "chat", "iss": "app"}, SECRET, "HS256"), 401, "expired"),
    (jwt.encode(claims(aud="chat", iss="app"), b"x" * 32, "HS256"), 401, "not valid"),
    (jwt.encode(claims(aud="other", iss="app"), SECRET, "HS256"), 401, "audience"),
    (jwt.encode(claims(aud="chat", iss="evil"), SECRET, "HS256"), 401, "issuer"),
    (jwt.encode(claims(aud="chat", iss="app"), None, "none"), 401, "not valid"),
    (jwt.encode(claims(aud="chat", iss="app"), SECRET, "HS512"), 401, "not valid"),
    (jwt.encode({"sub": "u1", "aud": "chat", "iss": "app"}, SECRET, "HS256"), 401, "no exp"),
    (jwt.encode(claims(aud="chat", iss="app", rooms="all"), SECRET, "HS256"), 401, "rooms"),
    ("garbage", 401, "not valid"),
], ids=["none", "expired", "wrong-key", "audience", "issuer", "alg-none", "other-alg",
        "no-exp", "bad-rooms", "garbage"])
def test_bad_tokens_are_refused_with_a_reason(hs256, token, code, words):
    """
    Missing, expired, wrongly signed, other-audience, alg none and
    malformed tokens are 401s that say why, never which secret.
    """
    refused = outcome(hs256, token)
    assert refused[0] == code and words in refused[1]


def hmacSigned(payload: dict, key: bytes) -> str:
    """
    An HS256 token signed with C{key} by hand (PyJWT rightly refuses to use
    a public key as an HMAC secret; an attacker does not ask it).
    """
    import hashlib
    import hmac

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).decode().rstrip("=")

    signing = b64(b'{"alg":"HS256","typ":"JWT"}') + "." + b64(json.dumps(payload).encode())
    return signing + "." + b64(hmac.new(key, signing.encode(), hashlib.sha256).digest())


@pytest.mark.parametrize("make, algorithm", [
    (lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048), "RS256"),
    (lambda: ec.generate_private_key(ec.SECP256R1()), "ES256"),
    (lambda: ed25519.Ed25519PrivateKey.generate(), "EdDSA"),
])
def test_public_keys_fix_their_algorithm(tmp_path, make, algorithm):
    """
    A PEM public key admits tokens signed with its private key in its own
    algorithm, and refuses an HS256 token signed with the public key's
    bytes (the algorithm confusion attack).
    """
    private = make()
    pem = private.public_key().public_bytes(serialization.Encoding.PEM,
                                            serialization.PublicFormat.SubjectPublicKeyInfo)
    (tmp_path / "key.pem").write_bytes(pem)
    authenticator = JWTAuthenticator.fromSettings(AuthSettings(publicKeyFile=tmp_path / "key.pem"))
    assert outcome(authenticator, jwt.encode(claims(), private, algorithm)).user == "u1"
    assert outcome(authenticator, hmacSigned(claims(), pem))[0] == 401


def test_a_jwks_file_picks_the_key_by_kid(tmp_path):
    """
    With a JWKS key set, the token's kid chooses the key; an unknown kid is
    refused.
    """
    first, second = (rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in "ab")
    keys = []
    for kid, private in (("one", first), ("two", second)):
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(private.public_key()))
        keys.append({**jwk, "kid": kid, "alg": "RS256", "use": "sig"})
    (tmp_path / "jwks.json").write_text(json.dumps({"keys": keys}))
    authenticator = JWTAuthenticator.fromSettings(AuthSettings(publicKeyFile=tmp_path / "jwks.json"))
    token = jwt.encode(claims(), second, "RS256", headers={"kid": "two"})
    assert outcome(authenticator, token).user == "u1"
    wrongKid = jwt.encode(claims(), second, "RS256", headers={"kid": "one"})
    assert outcome(authenticator, wrongKid)[0] == 401
    unknown = jwt.encode(claims(), second, "RS256", headers={"kid": "three"})
    assert outcome(authenticator, unknown) == (401, "the token's kid names no key we know")


def test_bad_key_settings_are_errors_naming_the_option(tmp_path):
    """
    A short secret, a secret with a public-key algorithm, a file that is no
    key, and no key at all are ValueErrors naming the option.
    """
    short, secret, notKey = tmp_path / "short", tmp_path / "secret", tmp_path / "not-a-key"
    short.write_bytes(b"tiny")
    secret.write_bytes(SECRET)
    notKey.write_text("hello")
    for settings, option in ((AuthSettings(secretFile=short), "--auth-secret-file"),
                             (AuthSettings(secretFile=secret, algorithm="RS256"), "--auth-algorithm"),
                             (AuthSettings(publicKeyFile=notKey), "--auth-public-key"),
                             (AuthSettings(), "--auth-secret-file or --auth-public-key")):
        with pytest.raises(ValueError, match=option):
            JWTAuthenticator.fromSettings(settings)


def test_refresh_takes_only_the_same_user(hs256):
    """
    A refresh gives the new identity for the same sub, and refuses a token
    for someone else or an invalid one.
    """
    current = outcome(hs256, jwt.encode(claims(aud="chat", iss="app"), SECRET, "HS256"))
    later = claims(aud="chat", iss="app", exp=int(time.time()) + 3600)
    results = []
    hs256.refresh(current, jwt.encode(later, SECRET, "HS256")).addBoth(results.append)
    hs256.refresh(current, jwt.encode({**later, "sub": "u2"}, SECRET, "HS256")).addBoth(results.append)
    hs256.refresh(current, "garbage").addBoth(results.append)
    assert results[0].expires == later["exp"]
    assert results[1].value.code == 403 and results[2].value.code == 401


def test_tokens_travel_in_a_subprotocol_a_header_a_cookie_or_if_allowed_the_query():
    """
    The bearer subprotocol (base64url) comes first, then the Authorization
    header, the cookie, and ?token= only when allowed; handlers see neither
    the header nor the parameter.
    """
    encoded = base64.urlsafe_b64encode(b"tok.en-1").decode().rstrip("=")
    assert splitOffers(["bearer." + encoded, "chat"]) == (["chat"], "tok.en-1")
    assert splitOffers(["chat"]) == (["chat"], None)
    assert splitOffers(["bearer.!!"]) == ([], "")
    carriers = Carriers(cookie="session")
    headers = {"authorization": "Bearer from-header", "cookie": "a=b; session=from-cookie"}
    assert findToken("from-sub", headers, {}, carriers) == "from-sub"
    assert findToken(None, headers, {}, carriers) == "from-header"
    assert findToken(None, {"cookie": headers["cookie"]}, {}, carriers) == "from-cookie"
    assert findToken(None, {}, {"token": ["q"]}, carriers) is None
    assert findToken(None, {}, {"token": ["q"]}, Carriers(allowQuery=True)) == "q"
    assert withoutCredentials(headers, {"token": ["q"], "name": ["x"]}) == (
        {"cookie": headers["cookie"]}, {"name": ["x"]})


def test_a_hook_answer_must_name_a_user():
    """
    A hook's 200 answer becomes the identity; one without a user or with
    ill-typed fields is the backend's failure (503), never an admission.
    """
    identity = identityFromJSON({"user": "42", "name": "Al", "rooms": ["k"], "expires": 5, "info": {}})
    assert (identity.user, identity.name, identity.rooms, identity.expires) == ("42", "Al", ("k",), 5.0)
    for bad in ({}, {"user": ""}, {"user": "1", "rooms": "all"}, {"user": "1", "expires": True}, []):
        with pytest.raises(AuthRefused) as refused:
            identityFromJSON(bad)
        assert refused.value.code == 503
