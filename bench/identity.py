"""
The credentials scenarios 10 to 12 need, all made before anything is
timed: an HS256 secret, an RS256 key pair, one signed token per client
(offered as the subprotocol C{bearer.<base64url token>}, as a browser
would) and a backend API key, each in a file of a temporary directory.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from pathlib import Path
from typing import Any

from bench.procs import BenchError

#: How long the pre-signed tokens stay valid: longer than any run.
TOKEN_LIFETIME = 3600
#: The subprotocol prefix that carries a token (wsservice.auth.carriers).
BEARER = "bearer."


def _jwt() -> Any:
    """
    PyJWT, with the C{cryptography} package RS256 needs; a L{BenchError}
    saying what to install when either is missing.
    """
    try:
        import jwt
        from cryptography.hazmat.primitives.asymmetric import rsa  # noqa: F401
    except ImportError as e:
        raise BenchError(f"signing tokens needs PyJWT[crypto] in the harness's Python: {e}")
    return jwt


def writeSecret(directory: Path) -> tuple[Path, bytes]:
    """
    A fresh HS256 secret (longer than the service's 32-byte minimum) in a
    file for C{--auth-secret-file}, and the secret.
    """
    secret = secrets.token_hex(32).encode("ascii")
    path = directory / "hs256.secret"
    path.write_bytes(secret)
    return path, secret


def writeKeyPair(directory: Path) -> tuple[Path, Any]:
    """
    A fresh RSA key pair: the PEM public key in a file for
    C{--auth-public-key}, and the private key that signs the tokens.
    """
    _jwt()
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = directory / "rs256.pub.pem"
    path.write_bytes(private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return path, private


def bearerOffer(token: str) -> str:
    """
    The subprotocol that carries C{token}: base64url, without padding.
    """
    return BEARER + base64.urlsafe_b64encode(token.encode("ascii")).decode("ascii").rstrip("=")


def signedClients(count: int, key: Any, algorithm: str) -> list[dict[str, Any]]:
    """
    One entry per client for the load generator's C{clientsFile}: the
    bearer offer of a token of its own user (C{sub}, C{name}, C{exp}),
    and that user, which its welcome must name.
    """
    jwt = _jwt()
    expires = int(time.time()) + TOKEN_LIFETIME
    clients = []
    for i in range(count):
        user = f"bench-{i}"
        token = jwt.encode({"sub": user, "name": f"bench {i}", "exp": expires}, key, algorithm)
        clients.append({"offers": [bearerOffer(token)], "user": user})
    return clients


def writeClients(directory: Path, name: str, clients: list[dict[str, Any]]) -> Path:
    path = directory / f"{name}.clients.json"
    path.write_text(json.dumps(clients))
    return path


def writeAPIKey(directory: Path) -> tuple[Path, str]:
    """
    A fresh backend API key (the service takes 16 characters or more) in a
    file for C{--api-key-file}, and the key.
    """
    key = secrets.token_hex(24)
    path = directory / "api.keys"
    path.write_text(key + "\n")
    return path, key
