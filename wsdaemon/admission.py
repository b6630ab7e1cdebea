"""Who is connecting, and whether they may: the one place that knows each connection's client.

Every accepted connection gets an :class:`AdmissionTicket` from the listener's
:class:`Admission`. The ticket holds the client address the connection is
counted under, and only the admission changes it, moving the count with it;
so a connection is counted, checked and uncounted under one key, whatever
the transport reports later. (On a PROXY-protocol listener the transport's
peer changes from the proxy to the client once the PROXY header is read: a
count keyed by asking the transport again would count the connection under
the proxy and uncount it under the client.)

The address itself is a pure function of what the connection shows (the TCP
peer, a trusted proxy's forwarding headers, the trusted networks),
:func:`resolve_client`, asked once per HTTP request by
:meth:`Admission.resolve`. Everything else (the per-address limit and rate, the log
lines, ``request.clientAddress``, ``transport.clientAddress``, the ``process``
handler's ``REMOTE_ADDR``) reads the ticket's answer, never the socket.
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from typing import TYPE_CHECKING, NamedTuple

from wsdaemon.core import Limits, ServiceUnavailable, TooManyRequests
from wsdaemon.forwarded import (
    IPAddress,
    client_of,
    forwarded_hops,
    node_address,
    x_forwarded_for_hops,
    x_forwarded_proto,
)
from wsdaemon.interfaces import ClientAddress
from wsdaemon.ratelimit import BucketTable, retry_after_seconds

if TYPE_CHECKING:
    from twisted.internet.interfaces import IAddress
    from twisted.web.server import Request

__all__ = [
    "Admission",
    "AdmissionTicket",
    "ClientAddress",
    "ForwardedHeaders",
    "Resolution",
    "TrustedNetworks",
    "client_address",
    "resolve_client",
    "resolve_client_address",
]

#: The networks whose peers are reverse proxies allowed to say who the client is (``[proxy] trusted_networks``).
TrustedNetworks = tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]
#: The schemes a trusted proxy's ``proto`` may name that make a request secure (TLS up to the proxy).
SECURE_SCHEMES = frozenset({"https", "wss"})


class ForwardedHeaders(NamedTuple):
    """The raw values of the request headers a reverse proxy sets, each line in the order received."""

    forwarded: tuple[str, ...] = ()
    x_forwarded_for: tuple[str, ...] = ()
    x_forwarded_proto: tuple[str, ...] = ()

    @classmethod
    def of(cls, request: Request) -> ForwardedHeaders:
        """The headers of a twisted.web request (Latin-1, as HTTP/1.1 header bytes are)."""
        headers = request.requestHeaders

        def lines(name: bytes) -> tuple[str, ...]:
            return tuple(value.decode("latin-1") for value in headers.getRawHeaders(name, []))

        return cls(lines(b"forwarded"), lines(b"x-forwarded-for"), lines(b"x-forwarded-proto"))


class Resolution(NamedTuple):
    """Who a request comes from, and whether it was TLS up to our trusted proxy.

    Attributes:
        address: the client address (limits, logs, ``request.clientAddress``).
        secure: a trusted proxy said the client spoke https (``request.isSecure()``).
    """

    address: ClientAddress
    secure: bool = False


def resolve_client(
    peer: IAddress | None, headers: ForwardedHeaders = ForwardedHeaders(), trusted: TrustedNetworks = ()
) -> Resolution:
    """The client a connection shows: the TCP peer, or whom the trusted proxies in front of it speak for.

    A pure function (no socket, no state), so every rule for who the client is
    can be tested alone. A PROXY header already shows in ``peer``, which
    Twisted's ``haproxy:`` endpoint sets to the proxied client. The headers count
    only when ``peer`` is in ``trusted``: then the chain of ``Forwarded``
    (RFC 7239; else ``X-Forwarded-For``) is walked from the right, the nearest
    proxy first. Each trusted hop passes the question to the one on its left;
    the first untrusted address is the client (all trusted: the leftmost). A hop
    that names no address (``unknown``, an obfuscated ``_id``, garbage) ends the
    walk at the proxy that wrote it, since nobody can vouch for what is further
    left. The scheme is the ``proto`` of the last ``Forwarded`` element read, or
    the last ``X-Forwarded-Proto`` item.

    Args:
        peer: the transport's peer address (``IPv4Address``, ``IPv6Address``,
            ``UNIXAddress``...), or None when there is none.
        headers: the request's forwarding headers (none before a request arrived).
        trusted: the networks of the proxies to believe (``[proxy] trusted_networks``).

    Returns:
        ``host`` and ``port`` of an IP address; any other address as its text, with no port.
    """
    direct = _peer_address(peer)
    if not trusted or not _is_trusted(node_address(direct.host), trusted):  # no proxies: no address to parse
        return Resolution(direct)
    hops = forwarded_hops(headers.forwarded)
    from_forwarded = hops is not None
    if hops is None:
        hops = x_forwarded_for_hops(headers.x_forwarded_for)
    proto = "" if from_forwarded else x_forwarded_proto(headers.x_forwarded_proto)
    client = direct
    for hop in reversed(hops):
        if from_forwarded:
            proto = hop.proto  # the element that describes this hop's connection
        parsed = node_address(hop.node)
        if parsed is None:
            break
        client = client_of(*parsed)
        if not _is_trusted(parsed, trusted):
            break
    return Resolution(client, proto in SECURE_SCHEMES)


def resolve_client_address(
    peer: IAddress | None, headers: ForwardedHeaders = ForwardedHeaders(), trusted: TrustedNetworks = ()
) -> ClientAddress:
    """The client address alone of :func:`resolve_client` (by default: the host and port of ``peer``)."""
    return resolve_client(peer, headers, trusted).address


def _peer_address(peer: IAddress | None) -> ClientAddress:
    """``host`` and ``port`` of an IP peer; any other address as its text, with no port."""
    host = getattr(peer, "host", None)
    if host is None:
        return ClientAddress(str(peer), None)
    port = getattr(peer, "port", None)
    return ClientAddress(str(host), port if isinstance(port, int) else None)


def _is_trusted(parsed: tuple[IPAddress, int | None] | None, trusted: TrustedNetworks) -> bool:
    """Whether a parsed address is in a trusted network (an IPv4-mapped IPv6 address as its IPv4 one)."""
    if parsed is None or not trusted:
        return False
    address = parsed[0]
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in network for network in trusted)


def client_address(request: Request) -> ClientAddress:
    """The client of ``request`` as wsdaemon resolved it (``request.clientAddress``).

    For code typed against a plain twisted.web ``Request``; a request that did
    not come through wsdaemon's site gets its transport's peer.
    """
    address = getattr(request, "clientAddress", None)
    return address if isinstance(address, ClientAddress) else resolve_client_address(request.getClientAddress())


class AdmissionTicket:
    """One open connection as its admission counts it.

    Attributes:
        address: the client address the connection is counted under; changed
            only by :meth:`Admission.resolve`, which moves the count along.
        open: False once :meth:`Admission.disconnected` uncounted it.
    """

    __slots__ = ("address", "open")

    def __init__(self, address: ClientAddress) -> None:
        self.address = address
        self.open = True

    def __repr__(self) -> str:
        return f"<AdmissionTicket {self.address} {'open' if self.open else 'closed'}>"


class Admission:
    """The client address of each connection, and the open-connection counts, in total and per client.

    One per daemon, shared by its listeners and endpoints: the
    ``SwitchingFactory`` opens and closes tickets as TCP connections come and
    go, each request resolves its ticket's address, and each WebSocket
    endpoint asks :meth:`check_upgrade` before the handshake. Limits are passed
    in on each call (they change on reload; the counts stay).
    """

    def __init__(self) -> None:
        self.open_connections = 0
        #: The most connections open at once since :meth:`forget_peak` (what a memory release compares with).
        self.peak_connections = 0
        self._per_client: Counter[str] = Counter()
        self._upgrade_rates = BucketTable()  # connection_rate_per_ip, one bucket per client address

    def room_for_connection(self, limits: Limits) -> bool:
        """Whether one more connection fits under ``max_connections`` (asked before accepting it)."""
        return self.open_connections < limits.max_connections

    def connected(self, peer: IAddress | None) -> AdmissionTicket:
        """Count a new connection under the client address its transport's ``peer`` shows."""
        ticket = AdmissionTicket(resolve_client_address(peer))
        self.open_connections += 1
        if self.open_connections > self.peak_connections:
            self.peak_connections = self.open_connections
        self._per_client[ticket.address.host] += 1
        return ticket

    def forget_peak(self) -> None:
        """Start the peak again from the connections open now."""
        self.peak_connections = self.open_connections

    def disconnected(self, ticket: AdmissionTicket) -> None:
        """Uncount a closed connection, under the address it is counted under; a second call does nothing."""
        if not ticket.open:
            return
        ticket.open = False
        self.open_connections -= 1
        self._uncount(ticket.address.host)

    def resolve(self, ticket: AdmissionTicket, request: Request, trusted: TrustedNetworks = ()) -> Resolution:
        """The client of ``request`` (on ``ticket``'s connection); the ticket and its count follow it.

        Asked once per HTTP request, when its head is complete: by then a PROXY
        header has been read, and the request's own headers are there for the
        trusted-proxy rules to read (``trusted``: the running config's networks).
        A keep-alive connection whose next request names another client moves
        again, so the count is always under the latest answer.
        """
        headers = ForwardedHeaders.of(request) if trusted else ForwardedHeaders()  # nobody to believe: not read
        resolution = resolve_client(request.getClientAddress(), headers, trusted)
        address = resolution.address
        if address != ticket.address:
            if ticket.open and address.host != ticket.address.host:
                self._uncount(ticket.address.host)
                self._per_client[address.host] += 1
            ticket.address = address
        return Resolution(ticket.address, resolution.secure)  # the ticket's own object: one value for everyone

    def check_upgrade(self, ticket: AdmissionTicket, limits: Limits, now: float) -> None:
        """Refuse a WebSocket upgrade over the per-client limits of ``limits`` (before any handler runs).

        Every upgrade attempt takes a token from its client's bucket (at ``now``,
        the reactor's time), refused ones included, so a client hammering the
        endpoint stays refused until it slows down.

        Raises:
            TooManyRequests: the client started more than ``connection_burst_per_ip``
                upgrades faster than ``connection_rate_per_ip``: 429 with Retry-After.
            ServiceUnavailable: the client already holds more than
                ``max_connections_per_ip`` connections (this one included): 503 with Retry-After.
        """
        host = ticket.address.host
        wait = self._upgrade_rates.take(
            host, now, limits.connection_rate_per_ip, limits.connection_burst_per_ip, limits.rate_limit_max_clients
        )
        if wait > 0.0:
            raise TooManyRequests(f"too many new connections from {host}", retry_after_seconds(wait))
        if self._per_client[host] > limits.max_connections_per_ip:
            raise ServiceUnavailable(f"too many connections from {host}")

    def connections_from(self, host: str) -> int:
        """How many open connections are counted under the client address ``host``."""
        return self._per_client.get(host, 0)

    def clients(self) -> dict[str, int]:
        """Every client address with open connections, and how many (a copy, for status and tests)."""
        return dict(self._per_client)

    def _uncount(self, host: str) -> None:
        """One connection fewer for ``host``; an address with none left is forgotten (the table stays small)."""
        left = self._per_client[host] - 1
        if left > 0:
            self._per_client[host] = left
        else:
            del self._per_client[host]
