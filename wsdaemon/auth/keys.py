"""Key files for JWT verification: an HMAC secret, or a PEM public key that fits the algorithms.

Everything that can be wrong with a key file is found when it is loaded (at start, and on
SIGHUP), so a bad file stops the start or is refused on reload, instead of failing every
connection later. The key's kind decides which algorithms it can verify: a secret only HS*, a
public key only its own family. That is what defeats the algorithm-confusion attack (an HS256
token "signed" with the server's RSA public key as the HMAC secret): a public key is never
used as a secret, and a PEM file is refused as ``secret_file``.
"""

from __future__ import annotations

from collections.abc import Sequence

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from wsdaemon.auth.errors import KeyFileError

#: RFC 7518 §3.2: an HMAC key at least as long as the hash output.
HMAC_MIN_BYTES = {"HS256": 32, "HS384": 48, "HS512": 64}
#: RFC 7518 §3.3 and §3.5: RSA keys of 2048 bits or more.
MIN_RSA_BITS = 2048
RSA_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512")
#: RFC 7518 §3.4: each ECDSA algorithm has its own curve.
EC_CURVES = {"ES256": "secp256r1", "ES384": "secp384r1", "ES512": "secp521r1"}
EDDSA_ALGORITHMS = ("EdDSA",)  # RFC 8037: Ed25519 or Ed448
ASYMMETRIC_ALGORITHMS = RSA_ALGORITHMS + tuple(EC_CURVES) + EDDSA_ALGORITHMS
#: A key file is small; anything bigger is the wrong file.
MAX_KEY_FILE_BYTES = 1024 * 1024


def read_key_file(option: str, expected: str, path: str, max_bytes: int = MAX_KEY_FILE_BYTES) -> bytes:
    """The file's bytes (at most ``max_bytes``).

    Raises:
        KeyFileError: it cannot be read, is empty, or is too big to be a key.
    """
    try:
        with open(path, "rb") as stream:
            data = stream.read(max_bytes + 1)
    except OSError as error:
        raise KeyFileError(option, expected, path, error.strerror or str(error)) from None
    if not data.strip():
        raise KeyFileError(option, expected, path, "empty")
    if len(data) > max_bytes:
        raise KeyFileError(option, expected, path, f"more than {max_bytes} bytes")
    return data


def load_hmac_secret(option: str, path: str, algorithms: Sequence[str]) -> bytes:
    """The shared secret for HS* algorithms; one trailing line ending is not part of it.

    Raises:
        KeyFileError: unreadable, a PEM key (which must never be an HMAC secret), or too short.
    """
    need = max(HMAC_MIN_BYTES[name] for name in algorithms)
    expected = f"a file holding a secret of at least {need} bytes"
    secret = read_key_file(option, expected, path)
    secret = secret[:-2] if secret.endswith(b"\r\n") else secret[:-1] if secret.endswith(b"\n") else secret
    if b"-----BEGIN" in secret:
        problem = "a PEM key, which is no HMAC secret; use public_key_file with an asymmetric algorithm"
        raise KeyFileError(option, expected, path, problem)
    if len(secret) < need:
        strongest = max(algorithms, key=HMAC_MIN_BYTES.__getitem__)
        raise KeyFileError(option, expected, path, f"{len(secret)} bytes; {strongest} needs {need} (RFC 7518 §3.2)")
    return secret


def load_public_key(option: str, path: str, algorithms: Sequence[str]) -> PublicKeyTypes:
    """The PEM public key (or certificate) that verifies ``algorithms``.

    Raises:
        KeyFileError: unreadable, not a PEM public key, a private key, or of the wrong kind.
    """
    expected = f"a PEM public key or certificate for {', '.join(algorithms)}"
    data = read_key_file(option, expected, path)
    if b"PRIVATE KEY-----" in data:
        problem = "a private key; give the public key only (openssl pkey -in KEY -pubout)"
        raise KeyFileError(option, expected, path, problem)
    key: PublicKeyTypes
    try:
        if b"-----BEGIN CERTIFICATE-----" in data:
            key = x509.load_pem_x509_certificate(data).public_key()
        else:
            key = serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm):
        raise KeyFileError(option, expected, path, "not a PEM public key or certificate") from None
    for name in algorithms:
        misfit = key_misfit(key, name)
        if misfit is not None:
            raise KeyFileError(option, expected, path, misfit)
    return key


def key_misfit(key: PublicKeyTypes, algorithm: str) -> str | None:
    """Why ``key`` cannot verify ``algorithm``, or None if it can."""
    if algorithm in RSA_ALGORITHMS:
        if not isinstance(key, rsa.RSAPublicKey):
            return f"{_kind(key)}, but {algorithm} needs an RSA key"
        return None if key.key_size >= MIN_RSA_BITS else f"a {key.key_size}-bit RSA key; at least {MIN_RSA_BITS}"
    if algorithm in EC_CURVES:
        curve = EC_CURVES[algorithm]
        if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != curve:
            return f"{_kind(key)}, but {algorithm} needs an EC key on {curve}"
        return None
    if not isinstance(key, (ed25519.Ed25519PublicKey, ed448.Ed448PublicKey)):
        return f"{_kind(key)}, but EdDSA needs an Ed25519 or Ed448 key"
    return None


def _kind(key: PublicKeyTypes) -> str:
    """The key's kind in words."""
    if isinstance(key, rsa.RSAPublicKey):
        return "an RSA key"
    if isinstance(key, ec.EllipticCurvePublicKey):
        return f"an EC key on {key.curve.name}"
    if isinstance(key, (ed25519.Ed25519PublicKey, ed448.Ed448PublicKey)):
        return "an EdDSA key"
    return f"a {type(key).__name__}"
