"""Key files are checked when loaded: a bad one is refused with its option and path named."""

from __future__ import annotations

import datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.auth.support import ec_key, private_pem, public_pem, rsa_key, write
from wsdaemon.auth.errors import KeyFileError
from wsdaemon.auth.keys import load_hmac_secret, load_public_key

RSA = rsa_key()


def refused(load, *args) -> str:
    """The message of the KeyFileError ``load(*args)`` raises."""
    with pytest.raises(KeyFileError) as info:
        load(*args)
    return str(info.value)


def test_missing_file_names_the_option_the_path_and_the_reason(tmp_path):
    """A key file that does not exist is refused with option, path and 'No such file'."""
    path = str(tmp_path / "absent")
    message = refused(load_hmac_secret, "secret_file", path, ["HS256"])
    assert message.startswith("secret_file: expected a file holding a secret of at least 32 bytes")
    assert repr(path) in message and "No such file or directory" in message


def test_secret_shorter_than_the_hash_is_refused(tmp_path):
    """RFC 7518 §3.2: an HS512 secret needs 64 bytes."""
    path = write(tmp_path / "secret", b"x" * 40)
    assert "40 bytes; HS512 needs 64" in refused(load_hmac_secret, "secret_file", path, ["HS256", "HS512"])


def test_trailing_newline_is_not_part_of_the_secret(tmp_path):
    """A secret written by echo has its newline dropped; everything else is kept."""
    assert (
        load_hmac_secret("secret_file", write(tmp_path / "s", b" " + b"k" * 32 + b"\n"), ["HS256"]) == b" " + b"k" * 32
    )


def test_empty_file_is_refused(tmp_path):
    """An empty key file is refused as empty."""
    assert "(empty)" in refused(load_hmac_secret, "secret_file", write(tmp_path / "s", b"\n"), ["HS256"])


def test_private_key_as_public_key_file_is_refused(tmp_path):
    """A private key is not deployed where only the public one is needed."""
    path = write(tmp_path / "key.pem", private_pem(RSA))
    assert "a private key" in refused(load_public_key, "public_key_file", path, ["RS256"])


def test_garbage_as_public_key_file_is_refused(tmp_path):
    """A file that is not PEM is refused as such."""
    path = write(tmp_path / "key.pem", b"not a key\n")
    assert "not a PEM public key" in refused(load_public_key, "public_key_file", path, ["RS256"])


@pytest.mark.parametrize(
    ("key", "algorithm", "problem"),
    [
        (RSA, "ES256", "an RSA key, but ES256 needs an EC key on secp256r1"),
        (ec_key(ec.SECP384R1()), "ES256", "an EC key on secp384r1, but ES256 needs an EC key on secp256r1"),
        (ec_key(), "EdDSA", "but EdDSA needs an Ed25519 or Ed448 key"),
        (ec_key(), "RS256", "but RS256 needs an RSA key"),
        (rsa_key(1024), "RS256", "a 1024-bit RSA key; at least 2048"),
    ],
)
def test_key_of_the_wrong_kind_is_refused(tmp_path, key, algorithm, problem):
    """The public key must fit every listed algorithm (family, curve, size)."""
    path = write(tmp_path / "key.pem", public_pem(key))
    assert problem in refused(load_public_key, "public_key_file", path, [algorithm])


def test_certificate_gives_its_public_key(tmp_path):
    """A PEM certificate may stand in for the public key (identity providers publish those)."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "issuer")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(RSA.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(RSA, hashes.SHA256())
    )
    path = write(tmp_path / "cert.pem", certificate.public_bytes(serialization.Encoding.PEM))
    key = load_public_key("public_key_file", path, ["RS256"])
    assert public_pem_of(key) == public_pem(RSA)


def public_pem_of(key) -> bytes:
    """The PEM of a public key."""
    return bytes(key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
