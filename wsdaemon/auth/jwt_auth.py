"""``type = "jwt"``: a signed JSON Web Token (RFC 7519), verified with PyJWT before the upgrade.

Rules for this file:

* ``algorithms`` is required and never holds ``none``; it is all HMAC (``secret_file``) or all
  asymmetric (``public_key_file``), never both, so a token can only verify with the one kind of
  key the operator meant (see :mod:`wsdaemon.auth.keys` for the confusion attack).
* ``exp`` is required; ``nbf`` and ``iat`` are checked when present; ``aud`` and ``iss`` are
  checked when configured (a token with an ``aud`` claim needs ``audience`` set: PyJWT refuses
  an audience nobody asked for). ``leeway_seconds`` forgives clock skew on all of them.
* Any token that does not verify gets 401 with an RFC 6750 §3 ``Bearer`` challenge; the log
  says why in our words, never the token.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import jwt
from twisted.web.iweb import IRequest
from zope.interface import implementer

from wsdaemon.auth.errors import Unauthorized, quoted
from wsdaemon.auth.keys import ASYMMETRIC_ALGORITHMS, HMAC_MIN_BYTES, load_hmac_secret, load_public_key
from wsdaemon.auth.tokens import QUERY_PARAMETER, TOKEN_SOURCES, MalformedCredential, TokenSources, find_token
from wsdaemon.handlers.options import OptionReader
from wsdaemon.interfaces import HandlerContext, HandlerOptionsError, IAuthenticator, Identity

_ALGORITHMS = tuple(HMAC_MIN_BYTES) + ASYMMETRIC_ALGORITHMS
_ALGORITHMS_EXPECTED = "a non-empty list of " + ", ".join(_ALGORITHMS) + ', all HS* or none of them (never "none")'


@dataclass(frozen=True)
class JWTSettings:
    """An endpoint's validated ``jwt`` options."""

    algorithms: tuple[str, ...]
    key_option: str  # "secret_file" or "public_key_file"
    key_file: str
    audience: tuple[str, ...] = ()
    issuer: str | None = None
    leeway_seconds: float = 0.0
    sources: TokenSources = field(default_factory=TokenSources)
    realm: str = "wsdaemon"


def read_jwt_settings(options: Mapping[str, Any]) -> JWTSettings:
    """Validate the options (the key file is read by :func:`build_authenticator`).

    Raises:
        HandlerOptionsError: an option is unknown, missing, of the wrong type, or inconsistent.
    """
    read = OptionReader(options)
    algorithms = _algorithms(read)
    hmac = algorithms[0] in HMAC_MIN_BYTES
    key_option, other = ("secret_file", "public_key_file") if hmac else ("public_key_file", "secret_file")
    if other in options:
        kind = "an HMAC" if hmac else "an asymmetric"
        raise HandlerOptionsError(other, f"no {other} with {kind} algorithm (use {key_option})", options[other])
    key_file = read.string(key_option, expected=f"the path of the key file for {', '.join(algorithms)}")
    sources = read.strings("token_from", ("header",), expected=f"a non-empty list of {', '.join(TOKEN_SOURCES)}")
    for source in sources:
        if source not in TOKEN_SOURCES:
            raise HandlerOptionsError("token_from", f"a non-empty list of {', '.join(TOKEN_SOURCES)}", list(sources))
    cookie = read.string("cookie_name", "access_token", expected="a cookie name (an HTTP token)")
    if "cookie_name" in options and "cookie" not in sources:
        raise HandlerOptionsError("cookie_name", 'token_from to include "cookie"', cookie)
    return JWTSettings(
        algorithms=algorithms,
        key_option=key_option,
        key_file=key_file,
        audience=_audience(read, options),
        issuer=read.string("issuer") if "issuer" in options else None,
        leeway_seconds=read.number("leeway_seconds", 0.0, 0.0, 300.0),
        sources=TokenSources(
            header="header" in sources,
            cookie=cookie if "cookie" in sources else None,
            query=QUERY_PARAMETER if "query" in sources else None,
        ),
        realm=read.string("realm", "wsdaemon"),
    )


def _audience(read: OptionReader, options: Mapping[str, Any]) -> tuple[str, ...]:
    """``audience``: absent, one string, or a non-empty list of strings."""
    if "audience" not in options:
        return ()
    if isinstance(options["audience"], str):
        return (read.string("audience"),)
    return read.strings("audience", expected="a string or a non-empty list of strings")


def _algorithms(read: OptionReader) -> tuple[str, ...]:
    """The ``algorithms`` list: known names, no ``none``, one family of key."""
    names = read.strings("algorithms", expected=_ALGORITHMS_EXPECTED)
    if any(name not in _ALGORITHMS for name in names):
        raise HandlerOptionsError("algorithms", _ALGORITHMS_EXPECTED, list(names))
    if len({name in HMAC_MIN_BYTES for name in names}) > 1:
        raise HandlerOptionsError("algorithms", _ALGORITHMS_EXPECTED + " (one key cannot verify both)", list(names))
    return tuple(dict.fromkeys(names))


#: PyJWT's verdicts, most specific first, with what the log says and what the client is told.
_VERDICTS: tuple[tuple[type[Exception], str, str], ...] = (
    (jwt.ExpiredSignatureError, "token expired", "the token has expired"),
    (jwt.ImmatureSignatureError, "token not valid yet (nbf or iat in the future)", "the token is not valid yet"),
    (jwt.InvalidSignatureError, "signature does not verify with the configured key", "the token is invalid"),
    (jwt.InvalidAlgorithmError, "algorithm not allowed", "the token is invalid"),
    (jwt.InvalidAudienceError, "wrong audience (aud)", "the token is not for this service"),
    (jwt.InvalidIssuerError, "wrong issuer (iss)", "the token is invalid"),
    (jwt.MissingRequiredClaimError, "missing a required claim", "the token is invalid"),
    (jwt.InvalidKeyError, "the token's algorithm does not fit the configured key", "the token is invalid"),
    (jwt.DecodeError, "malformed token", "the token is invalid"),
)


class JWTVerifier:
    """Verifies tokens with one endpoint's settings and key; built again when the key is reloaded."""

    def __init__(self, settings: JWTSettings, key: Any) -> None:
        self.settings = settings
        self.key = key
        self.required = ["exp"] + (["aud"] if settings.audience else []) + (["iss"] if settings.issuer else [])

    def challenge(self, description: str | None = None) -> str:
        """The ``WWW-Authenticate`` value: RFC 6750 §3, with ``error`` once a token was presented."""
        value = f"Bearer realm={quoted(self.settings.realm)}"
        if description is not None:
            value += f', error="invalid_token", error_description={quoted(description)}'
        return value

    def verify(self, token: str) -> Identity:
        """The identity in ``token`` if it verifies.

        Raises:
            Unauthorized: expired, not yet valid, badly signed, wrong algorithm, audience or
                issuer, missing ``exp``, or malformed.
        """
        settings = self.settings
        try:
            claims = jwt.decode(
                token,
                self.key,
                algorithms=list(settings.algorithms),
                options={"require": self.required},
                audience=list(settings.audience) or None,
                issuer=settings.issuer,
                leeway=settings.leeway_seconds,
            )
        except Exception as error:  # noqa: BLE001 - PyJWT may raise TypeError/ValueError on odd input too
            raise self._refusal(error, token) from None
        subject = claims.get("sub")
        name = subject if isinstance(subject, str) else ""
        return Identity(name, "jwt", MappingProxyType(claims), float(claims["exp"]))

    def _refusal(self, error: Exception, token: str) -> Unauthorized:
        """The 401 for a token that did not verify, with why in our own words."""
        why, told = "invalid token", "the token is invalid"
        for kind, reason, description in _VERDICTS:
            if isinstance(error, kind):
                why, told = reason, description
                break
        if isinstance(error, jwt.MissingRequiredClaimError) and error.claim in self.required:
            why = f"missing the {error.claim} claim"
        if isinstance(error, jwt.InvalidAlgorithmError):
            why = f"algorithm {_header_algorithm(token)} not allowed (allowed: {', '.join(self.settings.algorithms)})"
        return Unauthorized(f"jwt: {why}", self.challenge(told))


def _header_algorithm(token: str) -> str:
    """The ``alg`` of the token's header, if it is a name PyJWT knows (so the log holds only ours)."""
    try:
        algorithm = jwt.get_unverified_header(token).get("alg")
    except jwt.PyJWTError:
        return "(unreadable)"
    known = ("none", *jwt.algorithms.get_default_algorithms())
    return repr(algorithm) if algorithm in known else "(unknown)"


@implementer(IAuthenticator)
class JWTAuthenticator:
    """Reads the token from the request (header, cookie, query) and verifies it (at once: no Deferred)."""

    def __init__(self, verifier: JWTVerifier) -> None:
        self.verifier = verifier

    def authenticate(self, request: IRequest) -> Identity:
        """The request's identity.

        Raises:
            Unauthorized: no token, or one that does not verify.
        """
        try:
            token = find_token(request, self.verifier.settings.sources)
        except MalformedCredential as error:
            raise Unauthorized(f"jwt: {error.why}", self.verifier.challenge("the token is invalid")) from None
        if token is None:
            raise Unauthorized(f"jwt: no token ({self._looked_in()})", self.verifier.challenge())
        return self.verifier.verify(token)

    def _looked_in(self) -> str:
        sources = self.verifier.settings.sources
        places = ["Authorization: Bearer"] if sources.header else []
        places += [f"cookie {sources.cookie}"] if sources.cookie else []
        places += [f"query parameter {sources.query}"] if sources.query else []
        return "looked in " + ", ".join(places)


def load_verifier(settings: JWTSettings) -> JWTVerifier:
    """Read the key file and build the verifier.

    Raises:
        KeyFileError: the key file is unreadable or does not fit the algorithms.
    """
    algorithms: Sequence[str] = settings.algorithms
    if settings.key_option == "secret_file":
        return JWTVerifier(settings, load_hmac_secret("secret_file", settings.key_file, algorithms))
    return JWTVerifier(settings, load_public_key("public_key_file", settings.key_file, algorithms))


def build_authenticator(options: Mapping[str, Any], endpoint: str, context: HandlerContext) -> JWTAuthenticator:
    """The ``jwt`` authenticator of one endpoint, its key file read now (at start, or on SIGHUP).

    Raises:
        HandlerOptionsError: an option is invalid, or the key file unusable (KeyFileError).
    """
    return JWTAuthenticator(load_verifier(read_jwt_settings(options)))
