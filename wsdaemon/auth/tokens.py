"""Where a bearer token is read from: the ``Authorization`` header, a cookie, a query parameter.

Browsers cannot set headers on a WebSocket (the ``WebSocket`` constructor takes only a URL and
subprotocols), so a browser client sends its token in a cookie or in the URL's query; other
clients use ``Authorization: Bearer`` (RFC 6750 §2.1), which is the default and always read
first. A token in the query reaches no log of ours: the summary line logs the endpoint path,
not the URL, and twisted.web's access line gets the URL with the ``token`` parameter's value
replaced (:func:`without_token`). A proxy in front may still log it; prefer the cookie.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote_plus, urlsplit

from twisted.web.iweb import IRequest

#: The values ``token_from`` accepts.
TOKEN_SOURCES = ("header", "cookie", "query")
#: The query parameter read when ``token_from`` has "query" (``wss://host/chat?token=...``).
QUERY_PARAMETER = "token"
#: What replaces a token in a logged URL.
REDACTED = b"[redacted]"
#: RFC 6750 §2.1: b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=".
_B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
_BEARER = re.compile(r"bearer +(\S+) *", re.IGNORECASE)


class MalformedCredential(ValueError):
    """A credential is present but cannot be read; ``why`` says how, in our words (for the log)."""

    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.why = why


@dataclass(frozen=True)
class TokenSources:
    """Where to look for the token, in this order: header, cookie, query parameter.

    Attributes:
        header: whether to read ``Authorization: Bearer``.
        cookie: the cookie's name, or None not to read cookies.
        query: the query parameter's name, or None not to read the URL.
    """

    header: bool = True
    cookie: str | None = None
    query: str | None = None


def find_token(request: IRequest, sources: TokenSources) -> str | None:
    """The request's bearer token from the first source that has one, or None.

    A source that is present decides (a bad header is not passed over for a cookie), so the
    same request never verifies two different ways.

    Raises:
        MalformedCredential: the token is not RFC 6750 token syntax, or a source holds several.
    """
    readers: tuple[Callable[[], str | None], ...] = (
        lambda: _from_header(request) if sources.header else None,
        lambda: _from_cookie(request, sources.cookie),
        lambda: _from_query(request, sources.query),
    )
    for reader in readers:
        token = reader()
        if token is not None:
            if not _B64TOKEN.fullmatch(token):
                raise MalformedCredential("the token is not in bearer token syntax (RFC 6750 §2.1)")
            return token
    return None


def _from_header(request: IRequest) -> str | None:
    """``Authorization: Bearer TOKEN``; another scheme (such as Basic) is not a bearer token."""
    values: list[bytes] = request.requestHeaders.getRawHeaders(b"authorization") or []
    bearer = [value for value in values if value.strip().split(b" ", 1)[0].lower() == b"bearer"]
    if len(bearer) > 1:
        raise MalformedCredential("several Authorization: Bearer headers")
    if not bearer:
        return None
    match = _BEARER.fullmatch(bearer[0].decode("latin-1"))
    if match is None:
        raise MalformedCredential("an Authorization: Bearer header without a token")
    return match.group(1)


def _from_cookie(request: IRequest, name: str | None) -> str | None:
    """The first cookie called ``name`` (RFC 6265 §5.4: the most specific path comes first)."""
    if name is None:
        return None
    headers: list[bytes] = request.requestHeaders.getRawHeaders(b"cookie") or []
    for header in headers:
        for pair in header.decode("latin-1").split(";"):
            key, equals, value = pair.strip().partition("=")
            if equals and key.strip() == name:
                value = value.strip()
                return value[1:-1] if len(value) >= 2 and value[0] == value[-1] == '"' else value
    return None


def _from_query(request: IRequest, name: str | None) -> str | None:
    """The query parameter ``name`` (percent-decoded); given twice it is refused, not guessed."""
    if name is None:
        return None
    uri: bytes = request.uri
    query = urlsplit(uri.decode("latin-1")).query
    values = parse_qs(query, keep_blank_values=True).get(name)
    if not values:
        return None
    if len(values) > 1:
        raise MalformedCredential(f"the {name!r} query parameter given {len(values)} times")
    return values[0]


def without_token(uri: bytes) -> bytes:
    """``uri`` with the value of every ``token`` query parameter replaced, for logging it.

    Names are compared percent-decoded, as :func:`find_token` reads them (``%74oken`` too).
    """
    path, question, query = uri.partition(b"?")
    if not question:
        return uri
    pairs = []
    for pair in query.split(b"&"):
        name = pair.partition(b"=")[0]
        if unquote_plus(name.decode("latin-1")) == QUERY_PARAMETER:
            pair = name + b"=" + REDACTED
        pairs.append(pair)
    return path + question + b"&".join(pairs)
