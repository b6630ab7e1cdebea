"""The opening handshake, both sides (RFC 6455 §4).

The server side checks a :class:`RequestHead` against an :class:`EndpointPolicy`
and either returns :class:`Accepted` (with the exact 101 bytes to write) or
raises a :class:`HandshakeError` subclass carrying the HTTP status to answer.
The client side builds the upgrade request and checks the server's answer.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from wsdaemon.core.deflate import CLIENT_OFFER, DeflateSettings, Extension, client_params, negotiate
from wsdaemon.core.deflate import NAME as DEFLATE_NAME
from wsdaemon.core.errors import (
    BadRequest,
    ForbiddenOrigin,
    InvalidResponse,
    ProtocolViolation,
    UnsupportedVersion,
    UpgradeRequired,
)
from wsdaemon.core.extensions import ExtensionOffer, parse_extension_offers
from wsdaemon.core.http import RequestHead, ResponseHead, serialize_request, serialize_response, split_list, token_list

#: RFC 6455 §1.3: the GUID appended to the client's key.
_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def accept_key(key: str) -> str:
    """``Sec-WebSocket-Accept`` for a client's ``Sec-WebSocket-Key`` (RFC 6455 §4.2.2)."""
    digest = hashlib.sha1((key + _GUID).encode("ascii")).digest()
    return base64.b64encode(digest).decode("ascii")


@dataclass(frozen=True)
class EndpointPolicy:
    """What one endpoint accepts in a handshake.

    Attributes:
        subprotocols: the server's subprotocols, most preferred first.
        allowed_origins: browser origins allowed in; empty means "same origin as
            Host only" (the safe default on a port that also serves HTML), and
            ``"*"`` allows any origin.
        deflate: the permessage-deflate policy (RFC 7692); on by default.
    """

    subprotocols: tuple[str, ...] = ()
    allowed_origins: tuple[str, ...] = ()
    deflate: DeflateSettings = field(default_factory=DeflateSettings)


@dataclass(frozen=True)
class Accepted:
    """A successful server handshake."""

    response: bytes
    subprotocol: str | None
    extension_offers: tuple[ExtensionOffer, ...] = field(default=())
    extensions: tuple[Extension, ...] = field(default=())


def _normalized_origin(scheme: str, host: str, port: int | None) -> str:
    port = port or _DEFAULT_PORTS.get(scheme)
    return f"{host.lower()}:{port}"


def origin_allowed(origin: str, host: str, policy: EndpointPolicy, secure: bool = False) -> bool:
    """Whether a browser ``Origin`` may connect (RFC 6455 §10.2, against cross-site hijacking)."""
    if policy.allowed_origins:
        return "*" in policy.allowed_origins or origin.lower() in (o.lower() for o in policy.allowed_origins)
    try:
        parsed = urlsplit(origin)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            return False
        host_parsed = urlsplit(("https://" if secure else "http://") + host)
        if not host_parsed.hostname:
            return False
        origin_key = _normalized_origin(parsed.scheme, parsed.hostname, parsed.port)
        host_key = _normalized_origin(parsed.scheme, host_parsed.hostname, host_parsed.port)
    except ValueError:
        return False
    return origin_key == host_key


def _check_upgrade_headers(request: RequestHead) -> str:
    """The method, version and upgrade tokens of RFC 6455 §4.2.1; returns the Host."""
    if "websocket" not in token_list(request.get_all("upgrade")):
        if not request.get_all("upgrade"):
            raise UpgradeRequired("this is a WebSocket endpoint; send an Upgrade: websocket request")
        raise BadRequest("Upgrade header must name websocket")
    if request.method != "GET":
        raise BadRequest("the WebSocket handshake must be a GET")
    if request.version not in ("HTTP/1.1",):
        raise BadRequest("the WebSocket handshake needs HTTP/1.1")
    if "upgrade" not in token_list(request.get_all("connection")):
        raise BadRequest("Connection header must include upgrade")
    hosts = request.get_all("host")
    if len(hosts) != 1 or not hosts[0]:
        raise BadRequest("exactly one Host header is required")
    return hosts[0]


def _check_key_and_version(request: RequestHead) -> str:
    """The key must be base64 of exactly 16 bytes; the version must be 13."""
    versions = split_list(request.get_all("sec-websocket-version"))
    if not versions:
        raise BadRequest("missing Sec-WebSocket-Version")
    if versions != ["13"]:
        raise UnsupportedVersion("only WebSocket version 13 is supported")
    keys = request.get_all("sec-websocket-key")
    if len(keys) != 1:
        raise BadRequest("exactly one Sec-WebSocket-Key is required")
    key = keys[0].strip()
    try:
        raw = base64.b64decode(key.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raw = b""
    if len(raw) != 16:
        raise BadRequest("Sec-WebSocket-Key must be base64 of 16 bytes")
    return key


def choose_subprotocol(offered: list[str], supported: tuple[str, ...]) -> str | None:
    """The server's most preferred subprotocol that the client offered (RFC 6455 §4.2.2)."""
    for candidate in supported:
        if candidate in offered:
            return candidate
    return None


def accept_request(request: RequestHead, policy: EndpointPolicy, secure: bool = False) -> Accepted:
    """Check an upgrade request and build the 101 answer.

    Args:
        request: the request head as received.
        policy: the endpoint's subprotocol and origin policy.
        secure: whether it arrived over TLS (for the default ports of the origin check).

    Raises:
        UpgradeRequired: a plain GET without ``Upgrade`` (426).
        UnsupportedVersion: a version other than 13 (426).
        BadRequest: any other malformed upgrade (400).
        ForbiddenOrigin: a browser Origin the policy refuses (403).
    """
    host = _check_upgrade_headers(request)
    key = _check_key_and_version(request)
    origins = request.get_all("origin")
    if len(origins) > 1:
        raise BadRequest("more than one Origin header")
    if origins and not origin_allowed(origins[0], host, policy, secure):
        raise ForbiddenOrigin(f"origin {origins[0]} is not allowed on this endpoint")
    offers = tuple(parse_extension_offers(request.get_all("sec-websocket-extensions")))
    subprotocol = choose_subprotocol(split_list(request.get_all("sec-websocket-protocol")), policy.subprotocols)
    headers = [("Upgrade", "websocket"), ("Connection", "Upgrade"), ("Sec-WebSocket-Accept", accept_key(key))]
    if subprotocol is not None:
        headers.append(("Sec-WebSocket-Protocol", subprotocol))
    extensions: tuple[Extension, ...] = ()
    deflate = negotiate(offers, policy.deflate)
    if deflate is not None:
        headers.append(("Sec-WebSocket-Extensions", deflate[0]))
        extensions = (deflate[1],)
    return Accepted(serialize_response(101, headers), subprotocol, offers, extensions)


# --- client side -------------------------------------------------------------


@dataclass(frozen=True)
class ClientRequest:
    """An upgrade request we send, and the key needed to check its answer."""

    data: bytes
    key: str
    subprotocols: tuple[str, ...]
    offered_deflate: bool = False


def build_request(
    host: str, target: str, subprotocols: tuple[str, ...] = (), origin: str | None = None, deflate: bool = False
) -> ClientRequest:
    """Build a client upgrade request with a fresh random key (RFC 6455 §4.1).

    With ``deflate`` the request offers permessage-deflate (RFC 7692).
    """
    key = base64.b64encode(os.urandom(16)).decode("ascii")
    headers = [
        ("Host", host),
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Key", key),
        ("Sec-WebSocket-Version", "13"),
    ]
    if subprotocols:
        headers.append(("Sec-WebSocket-Protocol", ", ".join(subprotocols)))
    if origin is not None:
        headers.append(("Origin", origin))
    if deflate:
        headers.append(("Sec-WebSocket-Extensions", CLIENT_OFFER))
    return ClientRequest(serialize_request(target, headers), key, subprotocols, deflate)


def check_response(response: ResponseHead, request: ClientRequest) -> str | None:
    """Check the server's answer to our upgrade (RFC 6455 §4.1); returns the subprotocol.

    Raises:
        InvalidResponse: not a 101, wrong upgrade headers or accept key, or an
            unrequested subprotocol or extension.
    """
    if response.status != 101:
        raise InvalidResponse(f"server answered {response.status} {response.reason}".rstrip())
    if "websocket" not in token_list(response.get_all("upgrade")):
        raise InvalidResponse("response lacks Upgrade: websocket")
    if "upgrade" not in token_list(response.get_all("connection")):
        raise InvalidResponse("response lacks Connection: upgrade")
    if response.get("sec-websocket-accept") != accept_key(request.key):
        raise InvalidResponse("wrong Sec-WebSocket-Accept")
    response_extensions(response, request)
    subprotocol = response.get("sec-websocket-protocol")
    if subprotocol is not None and subprotocol not in request.subprotocols:
        raise InvalidResponse(f"server chose subprotocol {subprotocol!r} we did not offer")
    return subprotocol


def response_extensions(response: ResponseHead, request: ClientRequest) -> tuple[Extension, ...]:
    """The extensions the server accepted: nothing, or the permessage-deflate we offered.

    Raises:
        InvalidResponse: an extension we did not offer, or deflate parameters a server may not send.
    """
    try:
        accepted = parse_extension_offers(response.get_all("sec-websocket-extensions"))
        if not accepted:
            return ()
        if not request.offered_deflate or len(accepted) != 1 or accepted[0].name != DEFLATE_NAME:
            raise InvalidResponse("server accepted an extension we did not offer")
        return (client_params(accepted[0]),)
    except (BadRequest, ProtocolViolation) as error:
        raise InvalidResponse(f"invalid Sec-WebSocket-Extensions in the response: {error}") from None
