"""Where a bearer token is read from: header first, then the cookie and the query when configured."""

from __future__ import annotations

import pytest

from tests.auth.support import request
from wsdaemon.auth.tokens import MalformedCredential, TokenSources, find_token, without_token

EVERYWHERE = TokenSources(cookie="access_token", query="token")


def test_bearer_header_is_read_by_default():
    """Authorization: Bearer TOKEN gives TOKEN; the scheme name is case-insensitive (RFC 9110 §11.1)."""
    assert find_token(request(headers=[("Authorization", "bearer abc.def-_~+/=")]), TokenSources()) == "abc.def-_~+/="


def test_other_schemes_and_absent_sources_give_no_token():
    """A Basic header is no bearer token, and cookies and queries are not read unless configured."""
    sent = request("/chat?token=q", [("Authorization", "Basic dTpw"), ("Cookie", "access_token=c")])
    assert find_token(sent, TokenSources()) is None


def test_cookie_then_query_in_that_order():
    """Without a header the cookie wins over the query parameter."""
    sent = request("/chat?token=from-query", [("Cookie", "a=1; access_token=from-cookie; b=2")])
    assert find_token(sent, EVERYWHERE) == "from-cookie"
    assert find_token(request("/chat?x=1&token=from-query"), EVERYWHERE) == "from-query"


def test_quoted_cookie_value_is_unquoted():
    """RFC 6265 §4.1.1 allows a cookie value in double quotes."""
    assert find_token(request(headers=[("Cookie", 'access_token="tok"')]), EVERYWHERE) == "tok"


def test_header_can_be_left_out():
    """token_from without "header" ignores the Authorization header."""
    sent = request(headers=[("Authorization", "Bearer from-header"), ("Cookie", "access_token=c")])
    assert find_token(sent, TokenSources(header=False, cookie="access_token")) == "c"


@pytest.mark.parametrize(
    ("uri", "headers"),
    [
        ("/chat", [("Authorization", "Bearer a"), ("Authorization", "Bearer b")]),
        ("/chat", [("Authorization", "Bearer")]),
        ("/chat", [("Authorization", "Bearer two words")]),
        ("/chat?token=a&token=b", []),
        ("/chat?token=has%20space", []),
        ("/chat", [("Cookie", "access_token=bad,comma")]),
    ],
)
def test_unreadable_or_ambiguous_tokens_are_refused(uri, headers):
    """Two tokens, an empty one, or one outside RFC 6750 token syntax is refused, not guessed at."""
    with pytest.raises(MalformedCredential):
        find_token(request(uri, headers), EVERYWHERE)


@pytest.mark.parametrize(
    ("uri", "logged"),
    [
        (b"/chat?token=abc.def", b"/chat?token=[redacted]"),
        (b"/chat?room=1&token=abc&x=2", b"/chat?room=1&token=[redacted]&x=2"),
        (b"/chat?%74oken=abc", b"/chat?%74oken=[redacted]"),
        (b"/chat?tokens=keep&room=1", b"/chat?tokens=keep&room=1"),
        (b"/chat", b"/chat"),
    ],
)
def test_without_token_replaces_only_the_token_parameter(uri, logged):
    """The token parameter's value (under any spelling find_token reads) is replaced; nothing else changes."""
    assert without_token(uri) == logged
