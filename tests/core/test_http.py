"""Tests for wsdaemon.core.http and wsdaemon.core.extensions: header lists, heads, offers."""

from __future__ import annotations

import pytest

from wsdaemon.core.errors import BadRequest, InvalidResponse
from wsdaemon.core.extensions import ExtensionOffer, parse_extension_offers
from wsdaemon.core.http import (
    RequestHead,
    ResponseHead,
    find_head_end,
    is_token,
    parse_response_head,
    serialize_request,
    serialize_response,
    split_list,
    split_outside_quotes,
    token_list,
)


class TestHeaderLists:
    """RFC 9110 §5.6.1: comma-separated lists, with quoted strings kept whole."""

    def test_token_list_is_case_insensitive(self) -> None:
        """``Connection: keep-alive, Upgrade`` contains the token ``upgrade``."""
        assert token_list(["keep-alive, Upgrade"]) == ["keep-alive", "upgrade"]

    def test_token_list_joins_repeated_headers(self) -> None:
        """Tokens from several header lines form one list, in order."""
        assert token_list(["keep-alive", "UPGRADE"]) == ["keep-alive", "upgrade"]

    def test_empty_list_elements_are_dropped(self) -> None:
        """RFC 9110 §5.6.1: empty elements like ``a,,b,`` are ignored."""
        assert split_list([" a ,, b , ", ""]) == ["a", "b"]

    def test_commas_inside_quotes_do_not_split(self) -> None:
        """A comma in a quoted string is part of the value."""
        assert split_list(['a; x="1,2", b']) == ['a; x="1,2"', "b"]

    def test_escaped_quote_does_not_end_a_quoted_string(self) -> None:
        """``\\"`` inside quotes is an escaped quote, not the end of the string."""
        assert split_outside_quotes(r'a="x\",y";b', ";") == [r'a="x\",y"', "b"]

    def test_semicolons_inside_quotes_do_not_split(self) -> None:
        """A semicolon in a quoted string stays in the parameter."""
        assert split_outside_quotes('ext; p="a;b"; q', ";") == ["ext", 'p="a;b"', "q"]

    @pytest.mark.parametrize(
        ("text", "expected"),
        [("websocket", True), ("x-y.z_1~", True), ("", False), ("a b", False), ('"q"', False), ("a,b", False)],
    )
    def test_is_token(self, text: str, expected: bool) -> None:
        """RFC 9110 §5.6.2: tokens are visible characters minus delimiters."""
        assert is_token(text) is expected


class TestHeads:
    """Request and response heads as neutral values."""

    def test_request_get_joins_repeated_headers(self) -> None:
        """``get`` joins several values with commas; ``get_all`` keeps them apart."""
        head = RequestHead("GET", "/", "HTTP/1.1", (("x", "1"), ("y", "2"), ("x", "3")))
        assert head.get("x") == "1, 3" and head.get_all("x") == ["1", "3"] and head.get("z") is None

    def test_response_get_joins_repeated_headers(self) -> None:
        """The response head reads headers the same way."""
        head = ResponseHead(101, "Switching Protocols", (("x", "1"), ("x", "3")))
        assert head.get("x") == "1, 3" and head.get("y") is None

    def test_serialize_response(self) -> None:
        """A response head is a status line, header lines and a blank line."""
        data = serialize_response(101, [("Upgrade", "websocket")])
        assert data == b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n"

    def test_serialize_request(self) -> None:
        """A request head is a GET line, header lines and a blank line."""
        assert serialize_request("/chat", [("Host", "a")]) == b"GET /chat HTTP/1.1\r\nHost: a\r\n\r\n"

    def test_find_head_end(self) -> None:
        """The head ends just past the first blank line; -1 until it arrives."""
        assert find_head_end(b"HTTP/1.1 101 OK\r\n\r\nrest") == 19
        assert find_head_end(b"HTTP/1.1 101 OK\r\n") == -1

    def test_parse_response_head(self) -> None:
        """A response head parses into status, reason and lower-cased headers."""
        head = parse_response_head(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: WebSocket\r\nX-A:  b \r\n\r\n")
        assert head == ResponseHead(101, "Switching Protocols", (("upgrade", "WebSocket"), ("x-a", "b")))

    def test_parse_response_head_without_reason(self) -> None:
        """The reason phrase is optional."""
        assert parse_response_head(b"HTTP/1.1 101\r\n\r\n").reason == ""

    @pytest.mark.parametrize(
        "data",
        [
            b"HTTP/1.1\r\n\r\n",
            b"HTTP/1.1 abc OK\r\n\r\n",
            b"SPDY/3 101 OK\r\n\r\n",
            b"HTTP/1.1 101 OK\r\nno colon here\r\n\r\n",
            b"HTTP/1.1 101 OK\r\nbad name: x\r\n\r\n",
        ],
    )
    def test_malformed_response_head_is_rejected(self, data: bytes) -> None:
        """A response head that is not well-formed HTTP/1.x raises InvalidResponse."""
        with pytest.raises(InvalidResponse, match="malformed"):
            parse_response_head(data)


class TestExtensionOffers:
    """RFC 6455 §9.1: ``Sec-WebSocket-Extensions`` offers."""

    def test_no_header_means_no_offers(self) -> None:
        """Without the header there is nothing to negotiate."""
        assert parse_extension_offers([]) == []

    def test_offers_with_parameters(self) -> None:
        """Names and parameter keys are lower-cased; a bare parameter has value None."""
        offers = parse_extension_offers(["permessage-deflate; Client_Max_Window_Bits, X-Foo; a=1"])
        assert offers == [
            ExtensionOffer("permessage-deflate", (("client_max_window_bits", None),)),
            ExtensionOffer("x-foo", (("a", "1"),)),
        ]

    def test_offers_from_several_header_lines(self) -> None:
        """Offers in repeated headers are read in order."""
        assert [o.name for o in parse_extension_offers(["a", "b, c"])] == ["a", "b", "c"]

    def test_quoted_parameter_value_is_unquoted(self) -> None:
        """RFC 6455 §9.1: a quoted value is unquoted (and escapes undone)."""
        offers = parse_extension_offers(['permessage-deflate; client_max_window_bits="10"; x="\\a"'])
        assert offers[0].params == (("client_max_window_bits", "10"), ("x", "a"))

    def test_comma_and_semicolon_inside_quotes_keep_one_offer(self) -> None:
        """A quoted comma or semicolon does not split the offer, and a non-token value is refused."""
        for value in ['ext; p="a,b"', 'ext; p="a;b"']:
            with pytest.raises(BadRequest, match="parameter value"):
                parse_extension_offers([value])

    @pytest.mark.parametrize(
        "value",
        [
            '"ext"',  # name must be a token
            "ext;",  # empty parameter
            "ext; =1",  # parameter without a name
            "ext; a b=1",  # parameter name with a space
            'ext; p="10',  # unterminated quoted string
            'ext; p=""',  # empty value
            "ext; p=a b",  # value with a space
            "a b",  # name with a space
        ],
    )
    def test_malformed_offer_is_a_bad_request(self, value: str) -> None:
        """A malformed offer makes the handshake fail with 400."""
        with pytest.raises(BadRequest) as info:
            parse_extension_offers([value])
        assert info.value.status == 400
