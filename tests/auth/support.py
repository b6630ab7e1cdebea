"""Keys, tokens and requests for the authentication tests (made here, with PyJWT and cryptography)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from twisted.internet.testing import StringTransport
from twisted.web.http import HTTPChannel, Request

SECRET = b"s3cret-s3cret-s3cret-s3cret-s3cret!"  # 35 bytes: enough for HS256


def rsa_key(bits: int = 2048) -> rsa.RSAPrivateKey:
    """A fresh RSA private key."""
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def ec_key(curve: ec.EllipticCurve | None = None) -> ec.EllipticCurvePrivateKey:
    """A fresh EC private key (P-256 unless told)."""
    return ec.generate_private_key(curve or ec.SECP256R1())


def ed_key() -> ed25519.Ed25519PrivateKey:
    """A fresh Ed25519 private key."""
    return ed25519.Ed25519PrivateKey.generate()


def public_pem(key: Any) -> bytes:
    """The PEM SubjectPublicKeyInfo of a private key's public half."""
    return bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )


def private_pem(key: Any) -> bytes:
    """The unencrypted PKCS#8 PEM of a private key."""
    return bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )


def write(path: Path, data: bytes) -> str:
    """Write ``data`` to ``path`` and return the path as a string."""
    path.write_bytes(data)
    return str(path)


def claims(**extra: Any) -> dict[str, Any]:
    """Claims of a token valid for an hour from now, with ``extra`` on top (None removes one)."""
    now = int(time.time())
    values: dict[str, Any] = {"sub": "alice", "exp": now + 3600, "iat": now}
    values.update(extra)
    return {name: value for name, value in values.items() if value is not None}


def token(key: Any = SECRET, algorithm: str = "HS256", **extra: Any) -> str:
    """A token signed by PyJWT with ``key``."""
    return jwt.encode(claims(**extra), key, algorithm=algorithm)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unsigned_token(**extra: Any) -> str:
    """A token with ``alg: none`` and no signature (RFC 7519 §6), as an attacker sends it."""
    head = _b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    return f"{head}.{_b64(json.dumps(claims(**extra)).encode())}."


def hmac_token_with(secret: bytes, **extra: Any) -> str:
    """An HS256 token HMAC-signed by hand with ``secret`` (the confusion attack uses a public key PEM)."""
    head = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = _b64(json.dumps(claims(**extra)).encode())
    signature = hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{_b64(signature)}"


def request(uri: str = "/chat", headers: Iterable[tuple[str, str]] = ()) -> Request:
    """A received twisted.web request for ``uri`` with ``headers`` (no socket, no Site)."""
    channel = HTTPChannel()
    channel.makeConnection(StringTransport())
    built = Request(channel)
    for name, value in headers:
        built.requestHeaders.addRawHeader(name.encode("latin-1"), value.encode("latin-1"))
    built.gotLength(0)
    built.requestReceived(b"GET", uri.encode("latin-1"), b"HTTP/1.1")
    return built
