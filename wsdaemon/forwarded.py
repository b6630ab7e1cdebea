"""Reading the headers a reverse proxy adds: ``Forwarded`` (RFC 7239) and ``X-Forwarded-For``/``-Proto``.

Parsing only: text in, hops out, never an exception. Whether to believe any of
it (the TCP peer must be a trusted proxy) and which hop is the client is decided
in one place, :func:`wsdaemon.admission.resolve_client`; this module only turns
header values into :class:`Hop` lists, nearest proxy last, as the headers list them.

A hop's ``node`` is what the header named: an IP address (with a port, maybe), or
``unknown``, an obfuscated identifier (``_hidden``, RFC 7239 §6.3) or garbage.
:func:`node_address` tells an address apart from the rest.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from typing import NamedTuple

from wsdaemon.core.http import split_outside_quotes
from wsdaemon.interfaces import ClientAddress

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class Hop(NamedTuple):
    """One element of the chain: who connected to the next proxy, and over what.

    Attributes:
        node: the ``for=`` value (``Forwarded``) or the list item (``X-Forwarded-For``), unquoted.
        proto: the ``proto=`` of the same ``Forwarded`` element, lower case; "" when not given.
    """

    node: str
    proto: str = ""


def forwarded_hops(values: Iterable[str]) -> list[Hop] | None:
    """The elements of ``Forwarded`` header lines (in order), one :class:`Hop` each.

    An element without ``for=`` gets the node ``""`` (no address: the chain stops there).

    Returns:
        The hops, or None when the header is absent or not one ``for=`` is in it
        (then ``X-Forwarded-For`` is asked instead).
    """
    hops: list[Hop] = []
    for value in values:
        for element in split_outside_quotes(value, ","):
            if element.strip():
                pairs = _pairs(element) or {}  # a malformed element names nobody
                hops.append(Hop(pairs.get("for", ""), pairs.get("proto", "").lower()))
    return hops if any(hop.node for hop in hops) else None


def x_forwarded_for_hops(values: Iterable[str]) -> list[Hop]:
    """The items of ``X-Forwarded-For`` header lines, in order (an empty item stays, as a non-address)."""
    return [Hop(item.strip()) for value in values for item in value.split(",")]


def x_forwarded_proto(values: Sequence[str]) -> str:
    """The scheme the nearest proxy states: the last item of ``X-Forwarded-Proto``, lower case ("" if none)."""
    items = [item.strip().lower() for value in values for item in value.split(",")]
    return items[-1] if items else ""


def node_address(node: str) -> tuple[IPAddress, int | None] | None:
    """The IP address (and port) a hop names, or None for ``unknown``, ``_obfuscated`` or anything malformed.

    Accepts ``192.0.2.1``, ``192.0.2.1:80``, ``[2001:db8::1]``, ``[2001:db8::1]:80`` and a
    bare ``2001:db8::1`` (as some proxies write it in ``X-Forwarded-For``). An
    obfuscated port (``[::1]:_abc``) gives the address with no port.
    """
    text = node.strip()
    host, port_text = text, ""
    if text.startswith("["):
        host, bracket, port_text = text[1:].partition("]")
        if not bracket or (port_text and not port_text.startswith(":")):
            return None
        port_text = port_text[1:]
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    return address, _port(port_text)


def client_of(address: IPAddress, port: int | None) -> ClientAddress:
    """The :class:`ClientAddress` of a parsed node (an IPv4-mapped IPv6 address as its IPv4 text)."""
    mapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
    return ClientAddress(str(mapped or address), port)


def _port(text: str) -> int | None:
    """A decimal port from 0 to 65535; anything else (obfuscated, empty, out of range) is no port."""
    if text.isascii() and text.isdigit() and len(text) <= 5 and int(text) <= 65535:
        return int(text)
    return None


def _pairs(element: str) -> dict[str, str] | None:
    """The ``name=value`` pairs of one element (names lower case, values unquoted); None if malformed."""
    pairs: dict[str, str] = {}
    for pair in split_outside_quotes(element, ";"):
        if not pair.strip():
            continue
        name, equals, value = pair.strip().partition("=")
        name = name.strip().lower()
        if not equals or not name or name in pairs:
            return None
        unquoted = _unquote(value.strip())
        if unquoted is None:
            return None
        pairs[name] = unquoted
    return pairs


def _unquote(value: str) -> str | None:
    """A token as is, or a quoted string's content with its escapes undone; None if the quotes do not match."""
    if not value.startswith('"'):
        return None if '"' in value or "\\" in value else value
    if len(value) < 2 or not value.endswith('"'):
        return None
    out: list[str] = []
    body, escaped = value[1:-1], False
    for char in body:
        if escaped:
            out.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == '"':
            return None
        else:
            out.append(char)
    return None if escaped else "".join(out)
