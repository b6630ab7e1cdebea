"""Tests for wsdaemon.core.handshake: the opening handshake, both sides (RFC 6455 §4)."""

from __future__ import annotations

import base64
import dataclasses

import pytest

from wsdaemon.core.errors import (
    BadRequest,
    ForbiddenOrigin,
    HandshakeError,
    InvalidResponse,
    ServiceUnavailable,
    UnsupportedVersion,
    UpgradeRequired,
)
from wsdaemon.core.extensions import ExtensionOffer
from wsdaemon.core.handshake import (
    Accepted,
    EndpointPolicy,
    accept_key,
    accept_request,
    build_request,
    check_response,
    choose_subprotocol,
    origin_allowed,
)
from wsdaemon.core.http import RequestHead, ResponseHead, find_head_end, parse_response_head

RFC_KEY = "dGhlIHNhbXBsZSBub25jZQ=="
RFC_ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

#: The default policy: no subprotocols, same-origin only.
OPEN_POLICY = EndpointPolicy()

BASE_HEADERS = {
    "host": "example.com",
    "upgrade": "websocket",
    "connection": "Upgrade",
    "sec-websocket-key": RFC_KEY,
    "sec-websocket-version": "13",
}


def request(
    method: str = "GET", version: str = "HTTP/1.1", extra: tuple[tuple[str, str], ...] = (), **headers: str | None
) -> RequestHead:
    """A valid upgrade request, with headers changed (``None`` removes one) and extra lines added."""
    merged: dict[str, str | None] = {**BASE_HEADERS, **{k.replace("_", "-"): v for k, v in headers.items()}}
    lines = tuple((k, v) for k, v in merged.items() if v is not None) + extra
    return RequestHead(method, "/chat", version, lines)


def accept(
    req: RequestHead, policy: EndpointPolicy = OPEN_POLICY, secure: bool = False
) -> tuple[Accepted, ResponseHead]:
    """Run the server side and parse the 101 it writes."""
    accepted = accept_request(req, policy, secure)
    assert accepted.response.endswith(b"\r\n\r\n")
    return accepted, parse_response_head(accepted.response)


def parse_request_bytes(data: bytes) -> RequestHead:
    """Parse a request head the way twisted.web would hand it over (names lower-cased)."""
    assert find_head_end(data) == len(data)
    request_line, *lines = data.decode("latin-1").rstrip("\r\n").split("\r\n")
    method, target, version = request_line.split(" ")
    headers = tuple((name.lower(), value.strip()) for name, _, value in (line.partition(":") for line in lines))
    return RequestHead(method, target, version, headers)


def refused(req: RequestHead, error: type[HandshakeError], policy: EndpointPolicy = OPEN_POLICY) -> HandshakeError:
    """Check the request is refused with exactly ``error``; return it for more checks."""
    with pytest.raises(error) as info:
        accept_request(req, policy)
    assert type(info.value) is error
    return info.value


class TestAcceptKey:
    """RFC 6455 §1.3 and §4.2.2: Sec-WebSocket-Accept."""

    def test_accept_key_matches_the_rfc_example(self) -> None:
        """The RFC's example key gives the RFC's example answer."""
        assert accept_key(RFC_KEY) == RFC_ACCEPT

    def test_response_carries_the_accept_key(self) -> None:
        """The 101 answers the client's key."""
        _, head = accept(request())
        assert head.get("sec-websocket-accept") == RFC_ACCEPT


class TestServerAccepts:
    """RFC 6455 §4.2.2: the 101 response."""

    def test_valid_request_gets_101(self) -> None:
        """A well-formed upgrade gets 101 with Upgrade and Connection headers."""
        accepted, head = accept(request())
        assert head.status == 101
        assert head.get("upgrade") == "websocket" and head.get("connection") == "Upgrade"
        assert accepted.subprotocol is None and accepted.extension_offers == ()

    def test_101_has_no_server_banner(self) -> None:
        """The 101 names no server software or version."""
        _, head = accept(request())
        assert head.get("server") is None
        assert [name for name, _ in head.headers] == ["upgrade", "connection", "sec-websocket-accept"]

    @pytest.mark.parametrize("connection", ["keep-alive, Upgrade", "upgrade", "UPGRADE,keep-alive"])
    def test_connection_tokens_are_case_insensitive(self, connection: str) -> None:
        """``Connection: keep-alive, Upgrade`` (Firefox) is accepted."""
        accept(request(connection=connection))

    def test_upgrade_token_is_case_insensitive(self) -> None:
        """``Upgrade: WebSocket`` is accepted."""
        accept(request(upgrade="WebSocket"))

    def test_connection_header_split_over_lines(self) -> None:
        """``Connection`` repeated on two lines is one list."""
        accept(request(connection="keep-alive", extra=(("connection", "Upgrade"),)))

    def test_key_with_surrounding_spaces_is_accepted(self) -> None:
        """Whitespace around the key is not part of it."""
        _, head = accept(request(sec_websocket_key=f" {RFC_KEY} "))
        assert head.get("sec-websocket-accept") == RFC_ACCEPT

    def test_extension_offers_are_passed_on_and_deflate_is_accepted(self) -> None:
        """Parsed offers come back, and permessage-deflate is accepted with the frugal server window."""
        accepted, head = accept(request(sec_websocket_extensions="permessage-deflate; client_max_window_bits"))
        assert accepted.extension_offers == (ExtensionOffer("permessage-deflate", (("client_max_window_bits", None),)),)
        assert (
            head.get("sec-websocket-extensions")
            == "permessage-deflate; server_max_window_bits=12; client_max_window_bits=12"
        )
        assert len(accepted.extensions) == 1

    def test_unknown_extension_is_not_accepted(self) -> None:
        """An extension we do not implement is left out of the response."""
        accepted, head = accept(request(sec_websocket_extensions="x-webkit-deflate-frame"))
        assert head.get("sec-websocket-extensions") is None
        assert accepted.extensions == ()

    def test_malformed_extension_offer_is_400(self) -> None:
        """A malformed Sec-WebSocket-Extensions refuses the handshake with 400."""
        assert refused(request(sec_websocket_extensions="ext; =1"), BadRequest).status == 400


class TestServerRefuses:
    """RFC 6455 §4.2.1: malformed requests and their statuses."""

    @pytest.mark.parametrize("version", ["8", "12", "14", "13, 8", "abc"])
    def test_wrong_version_is_426_with_our_version(self, version: str) -> None:
        """RFC 6455 §4.4: another version gets 426 and ``Sec-WebSocket-Version: 13``."""
        error = refused(request(sec_websocket_version=version), UnsupportedVersion)
        assert error.status == 426
        assert ("Sec-WebSocket-Version", "13") in error.headers

    def test_missing_version_is_400(self) -> None:
        """A request without Sec-WebSocket-Version is malformed."""
        assert refused(request(sec_websocket_version=None), BadRequest).status == 400

    @pytest.mark.parametrize(
        "key",
        [
            None,  # missing
            base64.b64encode(b"x" * 15).decode(),  # short
            base64.b64encode(b"x" * 17).decode(),  # long
            "not base64 at all!!!!!!=",  # not base64
            "dGhlIHNhbXBsZSBub25jZQ",  # unpadded
            "",  # empty
            "dGhlIHNhbXBsZSBub25jZQ==é",  # not ASCII
        ],
    )
    def test_bad_key_is_400(self, key: str | None) -> None:
        """The key must be base64 of exactly 16 bytes."""
        assert refused(request(sec_websocket_key=key), BadRequest).status == 400

    def test_two_keys_are_400(self) -> None:
        """Exactly one Sec-WebSocket-Key is allowed."""
        refused(request(extra=(("sec-websocket-key", RFC_KEY),)), BadRequest)

    @pytest.mark.parametrize("method", ["POST", "HEAD", "get"])
    def test_non_get_is_400(self, method: str) -> None:
        """The handshake must be a GET (methods are case-sensitive)."""
        refused(request(method=method), BadRequest)

    @pytest.mark.parametrize("version", ["HTTP/1.0", "HTTP/0.9", "HTTP/2"])
    def test_not_http_1_1_is_400(self, version: str) -> None:
        """The handshake needs HTTP/1.1."""
        refused(request(version=version), BadRequest)

    def test_missing_host_is_400(self) -> None:
        """A Host header is required."""
        refused(request(host=None), BadRequest)

    def test_two_hosts_are_400(self) -> None:
        """Two Host headers are malformed."""
        refused(request(extra=(("host", "other.example"),)), BadRequest)

    @pytest.mark.parametrize("connection", [None, "keep-alive", "upgrade-insecure"])
    def test_connection_without_upgrade_is_400(self, connection: str | None) -> None:
        """``Connection`` must contain the token ``upgrade``."""
        refused(request(connection=connection), BadRequest)

    def test_upgrade_to_something_else_is_400(self) -> None:
        """``Upgrade: h2c`` on a WebSocket endpoint is malformed."""
        refused(request(upgrade="h2c"), BadRequest)

    def test_plain_get_is_426_upgrade_required(self) -> None:
        """A GET without Upgrade gets 426 naming websocket (RFC 7231 §6.5.15)."""
        error = refused(request(upgrade=None, connection=None), UpgradeRequired)
        assert error.status == 426
        assert ("Upgrade", "websocket") in error.headers

    def test_service_unavailable_carries_retry_after(self) -> None:
        """The 503 used for connection limits asks the client to retry later."""
        assert ServiceUnavailable.status == 503 and ("Retry-After", "5") in ServiceUnavailable.headers


class TestOrigin:
    """RFC 6455 §10.2: browser Origin checks against cross-site WebSocket hijacking."""

    @pytest.mark.parametrize(
        ("origin", "host"),
        [
            ("http://example.com", "example.com"),
            ("https://example.com", "example.com"),
            ("http://EXAMPLE.com", "example.COM"),
            ("http://example.com:80", "example.com"),
            ("http://example.com", "example.com:80"),
            ("https://example.com:443", "example.com"),
            ("https://example.com", "example.com:443"),
            ("http://example.com:8080", "example.com:8080"),
            ("http://[::1]:8080", "[::1]:8080"),
        ],
    )
    def test_same_origin_as_host_is_accepted(self, origin: str, host: str) -> None:
        """An Origin naming the Host (default ports written or not) may connect."""
        accept(request(host=host, origin=origin))

    @pytest.mark.parametrize(
        ("origin", "host"),
        [
            ("http://evil.example", "example.com"),
            ("http://example.com.evil.example", "example.com"),
            ("http://example.com:8080", "example.com"),
            ("http://example.com", "example.com:8080"),
            ("https://example.com", "example.com:80"),
            ("null", "example.com"),
            ("file://example.com", "example.com"),
            ("http://", "example.com"),
            ("http://example.com:99999", "example.com"),
            ("http://example.com", "example.com:bad"),
        ],
    )
    def test_cross_origin_is_403(self, origin: str, host: str) -> None:
        """Another site's (or an opaque) Origin is refused with 403."""
        assert refused(request(host=host, origin=origin), ForbiddenOrigin).status == 403

    def test_no_origin_is_accepted(self) -> None:
        """Non-browser clients send no Origin and are let in."""
        accept(request(origin=None))

    def test_two_origins_are_400(self) -> None:
        """Two Origin headers are malformed."""
        refused(request(origin="http://example.com", extra=(("origin", "http://example.com"),)), BadRequest)

    def test_allow_list_admits_listed_origin(self) -> None:
        """An origin on the allow-list may connect, compared case-insensitively."""
        policy = EndpointPolicy(allowed_origins=("https://App.example",))
        accept(request(origin="https://app.example"), policy)

    def test_allow_list_refuses_others_including_same_origin(self) -> None:
        """With an allow-list, only listed origins get in, even the Host's own."""
        policy = EndpointPolicy(allowed_origins=("https://app.example",))
        refused(request(origin="http://example.com"), ForbiddenOrigin, policy)

    def test_star_admits_any_origin(self) -> None:
        """``"*"`` allows every origin."""
        accept(request(origin="http://evil.example"), EndpointPolicy(allowed_origins=("*",)))

    def test_origin_allowed_with_empty_host_is_refused(self) -> None:
        """A Host that names no host cannot match anything."""
        assert not origin_allowed("http://example.com", ":80", EndpointPolicy())


class TestSubprotocols:
    """RFC 6455 §4.2.2: the server picks one offered subprotocol, or none."""

    def test_server_preference_wins(self) -> None:
        """The server's most preferred subprotocol that the client offered is chosen."""
        policy = EndpointPolicy(subprotocols=("v2.chat", "v1.chat"))
        accepted, head = accept(request(sec_websocket_protocol="v1.chat, v2.chat"), policy)
        assert accepted.subprotocol == "v2.chat" and head.get("sec-websocket-protocol") == "v2.chat"

    def test_offers_over_several_lines(self) -> None:
        """Offers in repeated headers count together."""
        policy = EndpointPolicy(subprotocols=("b",))
        accepted, _ = accept(request(sec_websocket_protocol="a", extra=(("sec-websocket-protocol", "b"),)), policy)
        assert accepted.subprotocol == "b"

    def test_no_overlap_means_no_subprotocol(self) -> None:
        """Without a common subprotocol the handshake still succeeds, naming none."""
        accepted, head = accept(request(sec_websocket_protocol="mqtt"), EndpointPolicy(subprotocols=("chat",)))
        assert accepted.subprotocol is None and head.get("sec-websocket-protocol") is None

    def test_no_offer_means_no_subprotocol(self) -> None:
        """A client that offers nothing gets nothing."""
        accepted, _ = accept(request(), EndpointPolicy(subprotocols=("chat",)))
        assert accepted.subprotocol is None

    def test_choose_subprotocol(self) -> None:
        """choose_subprotocol follows the server's order."""
        assert choose_subprotocol(["a", "b", "c"], ("c", "b")) == "c"
        assert choose_subprotocol(["a"], ()) is None


class TestClient:
    """RFC 6455 §4.1: the client builds the request and checks the answer."""

    def round_trip(
        self, subprotocols: tuple[str, ...] = (), policy: EndpointPolicy = OPEN_POLICY, origin: str | None = None
    ) -> tuple[str | None, str | None]:
        """Build a request, accept it on the server side, check the 101; return both subprotocols."""
        client = build_request("example.com", "/chat", subprotocols, origin)
        accepted = accept_request(parse_request_bytes(client.data), policy)
        return check_response(parse_response_head(accepted.response), client), accepted.subprotocol

    def test_round_trip(self) -> None:
        """A request from build_request is accepted and its 101 passes check_response."""
        assert self.round_trip() == (None, None)

    def test_round_trip_with_subprotocol_and_origin(self) -> None:
        """The negotiated subprotocol is the same on both sides; a same-origin Origin passes."""
        result = self.round_trip(("a", "b"), EndpointPolicy(subprotocols=("b",)), origin="http://example.com")
        assert result == ("b", "b")

    def test_request_key_is_fresh_base64_of_16_bytes(self) -> None:
        """Each request gets a new random 16-byte key (RFC 6455 §4.1)."""
        first, second = build_request("h", "/"), build_request("h", "/")
        assert len(base64.b64decode(first.key)) == 16 and first.key != second.key

    def good_response(self, client_key: str, **changes: str | None) -> ResponseHead:
        """A correct 101 for ``client_key``, with headers changed (``None`` removes one)."""
        headers = {"upgrade": "websocket", "connection": "Upgrade", "sec-websocket-accept": accept_key(client_key)}
        headers.update({k.replace("_", "-"): v for k, v in changes.items()})  # type: ignore[misc]
        return ResponseHead(101, "Switching Protocols", tuple((k, v) for k, v in headers.items() if v is not None))

    def test_wrong_accept_key_is_rejected(self) -> None:
        """A 101 answering another key is refused."""
        client = build_request("h", "/")
        with pytest.raises(InvalidResponse, match="Accept"):
            check_response(self.good_response(client.key, sec_websocket_accept=RFC_ACCEPT), client)

    def test_missing_accept_key_is_rejected(self) -> None:
        """A 101 without Sec-WebSocket-Accept is refused."""
        client = build_request("h", "/")
        with pytest.raises(InvalidResponse):
            check_response(self.good_response(client.key, sec_websocket_accept=None), client)

    @pytest.mark.parametrize("status", [200, 400, 426, 503])
    def test_non_101_is_rejected(self, status: int) -> None:
        """Any status but 101 is refused."""
        client = build_request("h", "/")
        response = dataclasses.replace(self.good_response(client.key), status=status, reason="Nope")
        with pytest.raises(InvalidResponse, match=str(status)):
            check_response(response, client)

    def test_unrequested_subprotocol_is_rejected(self) -> None:
        """A subprotocol the client did not offer is refused."""
        client = build_request("h", "/", ("chat",))
        with pytest.raises(InvalidResponse, match="subprotocol"):
            check_response(self.good_response(client.key, sec_websocket_protocol="mqtt"), client)

    def test_subprotocol_without_offer_is_rejected(self) -> None:
        """A subprotocol when the client offered none is refused."""
        client = build_request("h", "/")
        with pytest.raises(InvalidResponse, match="subprotocol"):
            check_response(self.good_response(client.key, sec_websocket_protocol="chat"), client)

    def test_unrequested_extension_is_rejected(self) -> None:
        """An extension the client did not offer is refused."""
        client = build_request("h", "/")
        with pytest.raises(InvalidResponse, match="extension"):
            check_response(self.good_response(client.key, sec_websocket_extensions="permessage-deflate"), client)

    @pytest.mark.parametrize(
        ("name", "value"), [("upgrade", None), ("upgrade", "h2c"), ("connection", None), ("connection", "close")]
    )
    def test_missing_upgrade_headers_are_rejected(self, name: str, value: str | None) -> None:
        """A 101 must say ``Upgrade: websocket`` and ``Connection: upgrade``."""
        client = build_request("h", "/")
        with pytest.raises(InvalidResponse):
            check_response(self.good_response(client.key, **{name: value}), client)

    def test_upgrade_headers_are_case_insensitive(self) -> None:
        """``Upgrade: WebSocket`` and ``Connection: upgrade`` are fine."""
        client = build_request("h", "/")
        assert check_response(self.good_response(client.key, upgrade="WebSocket", connection="upgrade"), client) is None
