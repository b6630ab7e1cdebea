"""Who is connecting, and whether they may: the one place that knows each connection's client.

Every accepted connection gets an :class:`AdmissionTicket` from the listener's
:class:`Admission`. The ticket holds the client address the connection is
counted under, and only the admission changes it, moving the count with it;
so a connection is counted, checked and uncounted under one key, whatever
the transport reports later. (On a PROXY-protocol listener the transport's
peer changes from the proxy to the client once the PROXY header is read: a
count keyed by asking the transport again would count the connection under
the proxy and uncount it under the client.)

The address itself is a pure function of what the connection shows,
:func:`resolve_client_address`, asked once per HTTP request by
:meth:`Admission.resolve`. Everything else (the per-address limit, the log
lines, ``request.clientAddress``, ``transport.clientAddress``, the ``process``
handler's ``REMOTE_ADDR``) reads the ticket's answer, never the socket.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

from wsdaemon.core import Limits, ServiceUnavailable
from wsdaemon.interfaces import ClientAddress

if TYPE_CHECKING:
    from twisted.internet.interfaces import IAddress
    from twisted.web.server import Request

__all__ = ["Admission", "AdmissionTicket", "ClientAddress", "client_address", "resolve_client_address"]


def resolve_client_address(peer: IAddress | None) -> ClientAddress:
    """The client address a connection shows: today, the host and port of ``peer``.

    A pure function (no socket, no state), so every rule for who the client is
    can be tested alone. Its inputs grow with the rules: a trusted proxy's
    ``Forwarded``/``X-Forwarded-For`` headers and the trusted networks come in
    as further arguments; a PROXY header already shows in ``peer``, which
    Twisted's ``haproxy:`` endpoint sets to the proxied client.

    Args:
        peer: the transport's peer address (``IPv4Address``, ``IPv6Address``,
            ``UNIXAddress``...), or None when there is none.

    Returns:
        ``host`` and ``port`` of an IP address; any other address as its text, with no port.
    """
    host = getattr(peer, "host", None)
    if host is None:
        return ClientAddress(str(peer), None)
    port = getattr(peer, "port", None)
    return ClientAddress(str(host), port if isinstance(port, int) else None)


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
        self._per_client: Counter[str] = Counter()

    def room_for_connection(self, limits: Limits) -> bool:
        """Whether one more connection fits under ``max_connections`` (asked before accepting it)."""
        return self.open_connections < limits.max_connections

    def connected(self, peer: IAddress | None) -> AdmissionTicket:
        """Count a new connection under the client address its transport's ``peer`` shows."""
        ticket = AdmissionTicket(resolve_client_address(peer))
        self.open_connections += 1
        self._per_client[ticket.address.host] += 1
        return ticket

    def disconnected(self, ticket: AdmissionTicket) -> None:
        """Uncount a closed connection, under the address it is counted under; a second call does nothing."""
        if not ticket.open:
            return
        ticket.open = False
        self.open_connections -= 1
        self._uncount(ticket.address.host)

    def resolve(self, ticket: AdmissionTicket, request: Request) -> ClientAddress:
        """The client of ``request`` (on ``ticket``'s connection); the ticket and its count follow it.

        Asked once per HTTP request, when its head is complete: by then a PROXY
        header has been read, and the request's own headers are there for the
        trusted-proxy rules to read.
        """
        address = resolve_client_address(request.getClientAddress())
        if address != ticket.address:
            if ticket.open and address.host != ticket.address.host:
                self._uncount(ticket.address.host)
                self._per_client[address.host] += 1
            ticket.address = address
        return ticket.address

    def check_upgrade(self, ticket: AdmissionTicket, limits: Limits) -> None:
        """Refuse a WebSocket upgrade over the per-client limits of ``limits`` (before any handler runs).

        Raises:
            ServiceUnavailable: the client already holds more than
                ``max_connections_per_ip`` connections (this one included): 503 with Retry-After.
        """
        host = ticket.address.host
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
