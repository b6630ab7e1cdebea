"""Who the client is behind reverse proxies: wsdaemon.admission.resolve_client over wsdaemon.forwarded's parsing.

A pure function of (TCP peer, forwarding headers, trusted networks): no stack, no socket.
"""

from __future__ import annotations

from ipaddress import ip_network

import pytest
from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress

from wsdaemon.admission import ForwardedHeaders, Resolution, resolve_client
from wsdaemon.forwarded import forwarded_hops, node_address
from wsdaemon.interfaces import ClientAddress

TRUSTED = (ip_network("10.0.0.0/8"), ip_network("fd00::/8"))
PROXY = IPv4Address("TCP", "10.0.0.2", 51000)
STRANGER = IPv4Address("TCP", "198.51.100.7", 40001)


def xff(*values: str, proto: tuple[str, ...] = ()) -> ForwardedHeaders:
    return ForwardedHeaders(x_forwarded_for=values, x_forwarded_proto=proto)


def fwd(*values: str, **others: tuple[str, ...]) -> ForwardedHeaders:
    return ForwardedHeaders(forwarded=values, **others)


def client(peer=PROXY, headers=ForwardedHeaders(), trusted=TRUSTED) -> ClientAddress:
    return resolve_client(peer, headers, trusted).address


# --- who may speak for the client ---------------------------------------------------------


def test_without_trusted_networks_the_headers_are_ignored():
    """By default nobody is trusted: X-Forwarded-For and its https say nothing."""
    assert resolve_client(PROXY, xff("203.0.113.9", proto=("https",)), ()) == Resolution(
        ClientAddress("10.0.0.2", 51000), False
    )


def test_an_untrusted_peer_cannot_name_a_client_or_claim_https():
    """A peer outside trusted_networks is the client, whatever Forwarded or X-Forwarded-* say."""
    headers = ForwardedHeaders(("for=203.0.113.9;proto=https",), ("203.0.113.9",), ("https",))
    assert resolve_client(STRANGER, headers, TRUSTED) == Resolution(ClientAddress("198.51.100.7", 40001), False)


def test_a_trusted_peer_without_headers_is_the_client():
    """A trusted proxy that adds no header (a health check) is itself the client."""
    assert client() == ClientAddress("10.0.0.2", 51000)


@pytest.mark.parametrize("peer", [UNIXAddress(b"/run/wsdaemon.sock"), None])
def test_a_peer_without_an_ip_is_never_trusted(peer):
    """A UNIX-socket peer (or none) cannot be in a network, so its headers are ignored."""
    assert client(peer, xff("203.0.113.9")) == ClientAddress(str(peer), None)


def test_an_ipv4_mapped_peer_is_checked_as_its_ipv4_address():
    """On a dual-stack socket a proxy shows as ::ffff:10.0.0.2, and 10.0.0.0/8 still trusts it."""
    assert client(IPv6Address("TCP", "::ffff:10.0.0.2", 1), xff("203.0.113.9")) == ClientAddress("203.0.113.9")


# --- X-Forwarded-For, right to left ------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (("203.0.113.9",), "203.0.113.9"),
        (("203.0.113.9, 10.1.1.1",), "203.0.113.9"),  # a second trusted proxy is skipped
        (("6.6.6.6, 203.0.113.9, 10.1.1.1",), "203.0.113.9"),  # what the client wrote itself is not believed
        (("6.6.6.6", "203.0.113.9"), "203.0.113.9"),  # two header lines are one list, in order
        (("10.3.3.3, 10.1.1.1",), "10.3.3.3"),  # all trusted: the leftmost
        (("2001:db8::7",), "2001:db8::7"),
        (("[2001:db8::7]:4711",), "2001:db8::7"),
        (("203.0.113.9:5555",), "203.0.113.9"),
        ((" 203.0.113.9 ,10.1.1.1 ",), "203.0.113.9"),
    ],
)
def test_x_forwarded_for_names_the_first_untrusted_address_from_the_right(values, expected):
    """X-Forwarded-For is read right to left, skipping trusted hops: the first untrusted address is the client."""
    assert client(headers=xff(*values)).host == expected


def test_a_port_in_x_forwarded_for_is_kept():
    """A proxy that writes host:port gives the client its port too."""
    assert client(headers=xff("203.0.113.9:5555")) == ClientAddress("203.0.113.9", 5555)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("garbage", "10.0.0.2"),  # the proxy's word is unreadable: the proxy is the client
        ("203.0.113.9, garbage", "10.0.0.2"),
        ("garbage, 203.0.113.9", "203.0.113.9"),
        ("203.0.113.9, , 10.1.1.1", "10.1.1.1"),  # an empty item ends the chain at the proxy that wrote it
        ("unknown", "10.0.0.2"),
        ("", "10.0.0.2"),
        (",,,", "10.0.0.2"),
        ("999.1.1.1", "10.0.0.2"),
        ("[2001:db8::7", "10.0.0.2"),
        ("2001:db8::7]:80", "10.0.0.2"),
        ("\x00\xff", "10.0.0.2"),
        ("203.0.113.9:99999", "203.0.113.9"),  # a bad port is no port
    ],
)
def test_malformed_x_forwarded_for_never_raises(value, expected):
    """Garbage in X-Forwarded-For ends the walk at the last readable hop; nothing raises."""
    assert client(headers=xff(value)).host == expected


# --- Forwarded (RFC 7239) -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (("for=203.0.113.9",), ClientAddress("203.0.113.9")),
        (('for="[2001:db8:cafe::17]:4711"',), ClientAddress("2001:db8:cafe::17", 4711)),
        (('for="[::1]:80"',), ClientAddress("::1", 80)),
        (("for=203.0.113.9;proto=http;by=10.0.0.2",), ClientAddress("203.0.113.9")),
        (("For=203.0.113.9",), ClientAddress("203.0.113.9")),  # names are case-insensitive
        (("for=203.0.113.9, for=10.1.1.1",), ClientAddress("203.0.113.9")),
        (("for=6.6.6.6, for=203.0.113.9",), ClientAddress("203.0.113.9")),
        (("for=6.6.6.6", "for=203.0.113.9"), ClientAddress("203.0.113.9")),
        (('for="203.0.113.9:8080"',), ClientAddress("203.0.113.9", 8080)),
        (('for="[2001:db8::1]:_obf"',), ClientAddress("2001:db8::1")),  # an obfuscated port is no port
        (('for="203.0.113.9";host="a,b;c"',), ClientAddress("203.0.113.9")),  # separators inside quotes
    ],
)
def test_forwarded_for_names_the_client(values, expected):
    """Forwarded's for= is read right to left like X-Forwarded-For, quoted IPv6 with its port included."""
    assert client(headers=fwd(*values)) == expected


@pytest.mark.parametrize(
    "value",
    [
        "for=unknown",
        "for=_hidden",
        "for=_SEVKISEK",
        'for="_gazonk"',
        "for=",
        "proto=https",
        "for",
        ";;;",
        "for=1.2.3.4;for=5.6.7.8",
    ],
)
def test_forwarded_without_an_address_leaves_the_proxy_as_the_client(value):
    """unknown, obfuscated identifiers, missing or repeated for=: the trusted proxy itself is the client."""
    assert client(headers=fwd(value)) == ClientAddress("10.0.0.2", 51000)


def test_an_obfuscated_hop_stops_the_walk_at_the_proxy_that_wrote_it():
    """Nobody vouches for what lies left of an unknown hop: the trusted hop right of it is the client."""
    assert client(headers=fwd("for=203.0.113.9, for=_hidden, for=10.1.1.1")) == ClientAddress("10.1.1.1")


@pytest.mark.parametrize(
    "value", ['for="[2001:db8::1]', 'for="unterminated', 'for=a"b', 'for="x\\', 'for="[::1]x"', "\x00=\xff"]
)
def test_malformed_forwarded_never_raises(value):
    """Bad quoting, brackets or bytes in Forwarded name nobody; the proxy is the client, and nothing raises."""
    assert client(headers=fwd(value)) == ClientAddress("10.0.0.2", 51000)


def test_forwarded_wins_over_x_forwarded_for():
    """With both, Forwarded decides (the README says to clear the one the proxy does not set)."""
    headers = ForwardedHeaders(("for=203.0.113.9",), ("198.51.100.99",))
    assert client(headers=headers) == ClientAddress("203.0.113.9")


def test_forwarded_without_any_for_falls_back_to_x_forwarded_for():
    """A Forwarded that names nobody at all (only proto=) leaves the choice to X-Forwarded-For."""
    headers = ForwardedHeaders(("proto=https",), ("203.0.113.9",))
    assert client(headers=headers) == ClientAddress("203.0.113.9")


# --- the scheme ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "secure"),
    [
        (xff("203.0.113.9", proto=("https",)), True),
        (xff("203.0.113.9", proto=("HTTPS",)), True),
        (xff("203.0.113.9", proto=("http",)), False),
        (xff("203.0.113.9", proto=("http, https",)), True),  # the nearest proxy's word: the last item
        (xff(proto=("https",)), True),
        (xff(proto=("garbage",)), False),
        (fwd("for=203.0.113.9;proto=https"), True),
        (fwd("for=203.0.113.9;proto=http"), False),
        (fwd("for=203.0.113.9;proto=https, for=10.1.1.1;proto=http"), True),  # the client's own hop
        (fwd("for=unknown;proto=https"), True),
        (fwd("for=203.0.113.9", x_forwarded_proto=("https",)), False),  # Forwarded decides, scheme too
    ],
)
def test_a_trusted_proxy_says_whether_the_client_spoke_https(headers, secure):
    """X-Forwarded-Proto / Forwarded proto= from a trusted peer make the request secure."""
    assert resolve_client(PROXY, headers, TRUSTED).secure is secure


# --- the parsers alone ----------------------------------------------------------------------


def test_forwarded_hops_keep_the_order_and_the_proto_of_each_element():
    """Each element is one hop, left to right, with its proto lower-cased."""
    assert forwarded_hops(['for=a;proto=HTTPS, for="b"']) == [("a", "https"), ("b", "")]


@pytest.mark.parametrize(
    ("node", "parsed"),
    [
        ("192.0.2.1", ("192.0.2.1", None)),
        ("[2001:db8::1]:443", ("2001:db8::1", 443)),
        ("2001:db8::1", ("2001:db8::1", None)),
        ("unknown", None),
        ("_x", None),
        ("[::1]:", ("::1", None)),
        ("1.2.3.4:abc", ("1.2.3.4", None)),
    ],
)
def test_node_address_reads_ip_and_port(node, parsed):
    """A node is an IP address with an optional port; anything else is no address."""
    result = node_address(node)
    assert (None if result is None else (str(result[0]), result[1])) == parsed
