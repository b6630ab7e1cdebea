"""JWT verification before the upgrade: each kind of bad token gets 401 with its reason, never the token."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.auth.support import (
    SECRET,
    ec_key,
    ed_key,
    hmac_token_with,
    public_pem,
    request,
    rsa_key,
    token,
    unsigned_token,
    write,
)
from wsdaemon.auth.errors import KeyFileError, Unauthorized
from wsdaemon.auth.jwt_auth import JWTAuthenticator, JWTVerifier, load_verifier, read_jwt_settings
from wsdaemon.interfaces import HandlerOptionsError

RSA = rsa_key()


def hs256(tmp_path: Path, **options: Any) -> JWTVerifier:
    """A verifier for HS256 tokens signed with SECRET."""
    settings = {"algorithms": ["HS256"], "secret_file": write(tmp_path / "secret", SECRET + b"\n"), **options}
    return load_verifier(read_jwt_settings(settings))


def rs256(tmp_path: Path, key: Any = RSA, **options: Any) -> JWTVerifier:
    """A verifier for RS256 tokens signed with ``key``."""
    settings = {"algorithms": ["RS256"], "public_key_file": write(tmp_path / "key.pem", public_pem(key)), **options}
    return load_verifier(read_jwt_settings(settings))


def refusal(verifier: JWTVerifier, presented: str) -> Unauthorized:
    """The 401 for ``presented``, checked to hold no part of the token in any of its words."""
    with pytest.raises(Unauthorized) as info:
        verifier.verify(presented)
    error = info.value
    assert error.status == 401
    for text in (error.why, error.reason, *(value for _, value in error.headers)):
        assert presented not in text
        assert all(part not in text for part in presented.split(".") if len(part) > 8)
    return error


def challenge(error: Unauthorized) -> str:
    """The WWW-Authenticate value of a refusal."""
    values = [value for name, value in error.headers if name == "WWW-Authenticate"]
    assert len(values) == 1
    return values[0]


# --- tokens that verify --------------------------------------------------------------------------


def test_valid_hs256_token_gives_its_subject_claims_and_expiry(tmp_path):
    """A valid HS256 token yields an identity with sub, every claim, and exp as expires_at."""
    presented = token(channels=["/chat/a"])
    identity = hs256(tmp_path).verify(presented)
    assert identity.method == "jwt"
    assert identity.name == "alice"
    assert identity.claims["channels"] == ["/chat/a"]
    assert identity.expires_at == jwt.decode(presented, options={"verify_signature": False})["exp"]


@pytest.mark.parametrize(
    ("algorithm", "key"), [("RS256", RSA), ("PS256", RSA), ("ES256", ec_key()), ("EdDSA", ed_key())]
)
def test_valid_asymmetric_tokens_verify_with_the_public_key(tmp_path, algorithm, key):
    """RS256, PS256, ES256 and EdDSA tokens verify with the public key file alone."""
    settings = {"algorithms": [algorithm], "public_key_file": write(tmp_path / "key.pem", public_pem(key))}
    identity = load_verifier(read_jwt_settings(settings)).verify(token(key, algorithm))
    assert identity.name == "alice"


def test_audience_and_issuer_that_match_are_accepted(tmp_path):
    """A token whose aud is one of the configured audiences and whose iss matches verifies."""
    verifier = hs256(tmp_path, audience=["chat", "news"], issuer="https://auth.example")
    assert verifier.verify(token(aud="news", iss="https://auth.example")).name == "alice"


def test_leeway_forgives_a_just_expired_token(tmp_path):
    """leeway_seconds accepts a token that expired within the allowed clock skew."""
    assert hs256(tmp_path, leeway_seconds=120).verify(token(exp=int(time.time()) - 30)).name == "alice"


# --- tokens that do not -----------------------------------------------------------------------------


def test_expired_token_gets_401_saying_it_expired(tmp_path):
    """An expired token gets 401, an invalid_token challenge that says so, and 'token expired' in the log."""
    error = refusal(hs256(tmp_path), token(exp=int(time.time()) - 60))
    assert error.why == "jwt: token expired"
    assert challenge(error) == (
        'Bearer realm="wsdaemon", error="invalid_token", error_description="the token has expired"'
    )


def test_token_not_valid_yet_gets_401(tmp_path):
    """A token whose nbf is in the future gets 401 'not valid yet'."""
    error = refusal(hs256(tmp_path), token(nbf=int(time.time()) + 600))
    assert "not valid yet" in error.why


def test_token_without_exp_gets_401(tmp_path):
    """exp is required: a token without one gets 401."""
    assert refusal(hs256(tmp_path), token(exp=None)).why == "jwt: missing the exp claim"


def test_token_signed_with_another_secret_gets_401(tmp_path):
    """An HS256 token signed with a different secret gets 401 for its signature."""
    error = refusal(hs256(tmp_path), token(b"another-secret-another-secret-another"))
    assert error.why == "jwt: signature does not verify with the configured key"


def test_token_signed_with_another_rsa_key_gets_401(tmp_path):
    """An RS256 token signed by another key pair gets 401 for its signature."""
    error = refusal(rs256(tmp_path), token(rsa_key(), "RS256"))
    assert "signature does not verify" in error.why


def test_token_with_an_algorithm_not_listed_gets_401(tmp_path):
    """An HS512 token on an endpoint that lists only HS256 gets 401 naming the algorithm."""
    key = SECRET * 2  # long enough for HS512
    error = refusal(hs256(tmp_path), token(key, "HS512"))
    assert error.why == "jwt: algorithm 'HS512' not allowed (allowed: HS256)"


@pytest.mark.parametrize("verifier_of", [hs256, rs256])
def test_alg_none_token_gets_401(tmp_path, verifier_of):
    """An unsigned token (alg: none) is refused with 401 whatever the endpoint's algorithms."""
    error = refusal(verifier_of(tmp_path), unsigned_token())
    assert error.why.startswith("jwt: algorithm 'none' not allowed")


def test_hs256_token_signed_with_the_rsa_public_key_gets_401(tmp_path):
    """The confusion attack: an HS256 token HMAC-signed with the server's RSA public key is refused."""
    forged = hmac_token_with(public_pem(RSA))
    error = refusal(rs256(tmp_path), forged)
    assert error.why == "jwt: algorithm 'HS256' not allowed (allowed: RS256)"


def test_an_rsa_public_key_is_refused_as_an_hmac_secret(tmp_path):
    """The confusion attack's other half: a PEM key given as secret_file stops the start, naming the file."""
    path = write(tmp_path / "public.pem", public_pem(RSA))
    with pytest.raises(KeyFileError) as info:
        load_verifier(read_jwt_settings({"algorithms": ["HS256"], "secret_file": path}))
    assert info.value.option == "secret_file"
    assert path in str(info.value) and "PEM key" in str(info.value)


def test_wrong_audience_gets_401(tmp_path):
    """A token for another audience gets 401 'wrong audience'."""
    assert refusal(hs256(tmp_path, audience="chat"), token(aud="billing")).why == "jwt: wrong audience (aud)"


def test_token_without_the_configured_audience_gets_401(tmp_path):
    """With audience configured, a token without aud is refused."""
    assert refusal(hs256(tmp_path, audience="chat"), token()).why == "jwt: missing the aud claim"


def test_wrong_issuer_gets_401(tmp_path):
    """A token from another issuer gets 401 'wrong issuer'."""
    verifier = hs256(tmp_path, issuer="https://auth.example")
    assert refusal(verifier, token(iss="https://evil.example")).why == "jwt: wrong issuer (iss)"


@pytest.mark.parametrize("garbage", ["abc", "a.b.c", "eyJhbGciOiJIUzI1NiJ9.e30", "x" * 40 + "." + "y" * 40 + ".z"])
def test_malformed_token_gets_401(tmp_path, garbage):
    """Something that is not a JWT at all gets 401 'malformed token'."""
    assert refusal(hs256(tmp_path), garbage).why == "jwt: malformed token"


@given(st.text(max_size=200))
def test_any_string_is_accepted_or_refused_with_401(garbage):
    """No input makes verification raise anything but a 401 (the verifier never crashes on peer input)."""
    verifier = JWTVerifier(read_jwt_settings({"algorithms": ["HS256"], "secret_file": "unused"}), SECRET)
    with pytest.raises(Unauthorized):
        verifier.verify(garbage)


# --- the authenticator: the request in, an identity or a 401 out -----------------------------------


def test_missing_token_gets_401_with_a_bare_challenge(tmp_path):
    """A request without a token gets 401 and a Bearer challenge with no error code (RFC 6750 §3.1)."""
    with pytest.raises(Unauthorized) as info:
        JWTAuthenticator(hs256(tmp_path)).authenticate(request("/chat"))
    assert challenge(info.value) == 'Bearer realm="wsdaemon"'
    assert info.value.why == "jwt: no token (looked in Authorization: Bearer)"


def test_token_in_the_header_is_verified(tmp_path):
    """Authorization: Bearer TOKEN is read and verified."""
    authenticator = JWTAuthenticator(hs256(tmp_path))
    identity = authenticator.authenticate(request("/chat", [("Authorization", f"Bearer {token()}")]))
    assert identity.name == "alice"


def test_token_in_a_cookie_or_the_query_needs_token_from(tmp_path):
    """A cookie or query token is read only when token_from names that place."""
    plain = JWTAuthenticator(hs256(tmp_path))
    browser = JWTAuthenticator(hs256(tmp_path, token_from=["header", "cookie", "query"], cookie_name="jwt"))
    by_cookie = request("/chat", [("Cookie", f"theme=dark; jwt={token()}")])
    by_query = request(f"/chat?token={token()}")
    for sent in (by_cookie, by_query):
        with pytest.raises(Unauthorized):
            plain.authenticate(sent)
        assert browser.authenticate(sent).name == "alice"


def test_a_bad_token_in_the_header_is_refused_even_with_a_good_cookie(tmp_path):
    """The first place holding a token decides; a bad header is not passed over for a cookie."""
    authenticator = JWTAuthenticator(hs256(tmp_path, token_from=["header", "cookie"]))
    sent = request("/chat", [("Authorization", "Bearer not.a.token"), ("Cookie", f"access_token={token()}")])
    with pytest.raises(Unauthorized):
        authenticator.authenticate(sent)


# --- options checked at start --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "option"),
    [
        ({"secret_file": "/k"}, "algorithms"),
        ({"algorithms": ["none"], "secret_file": "/k"}, "algorithms"),
        ({"algorithms": ["HS256", "RS256"], "secret_file": "/k"}, "algorithms"),
        ({"algorithms": [], "secret_file": "/k"}, "algorithms"),
        ({"algorithms": ["HS256"]}, "secret_file"),
        ({"algorithms": ["RS256"], "secret_file": "/k"}, "secret_file"),
        ({"algorithms": ["HS256"], "public_key_file": "/k"}, "public_key_file"),
        ({"algorithms": ["HS256"], "secret_file": "/k", "token_from": ["url"]}, "token_from"),
        ({"algorithms": ["HS256"], "secret_file": "/k", "cookie_name": "jwt"}, "cookie_name"),
        ({"algorithms": ["HS256"], "secret_file": "/k", "leeway_seconds": 9999}, "leeway_seconds"),
        ({"algorithms": ["HS256"], "secret_file": "/k", "audience": 5}, "audience"),
    ],
)
def test_bad_options_name_the_option(options, option):
    """Each unusable jwt option is reported by name before anything listens."""
    with pytest.raises(HandlerOptionsError) as info:
        read_jwt_settings(options)
    assert info.value.option == option
