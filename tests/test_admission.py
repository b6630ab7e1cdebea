"""The admission object alone (wsdaemon.admission): who the client is, and the counts kept under that name.

No stack, no transport: addresses in, tickets and counts out.
"""

from __future__ import annotations

from ipaddress import ip_network
from typing import Any

import pytest
from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress
from twisted.web.http_headers import Headers

from wsdaemon.admission import Admission, client_address, resolve_client_address
from wsdaemon.core import Limits, ServiceUnavailable, TooManyRequests
from wsdaemon.interfaces import ClientAddress

PROXY = IPv4Address("TCP", "10.0.0.2", 51000)
CLIENT = IPv4Address("TCP", "198.51.100.7", 40001)


class RequestFrom:
    """What the admission asks of a request: the address its transport reports now, and its headers."""

    def __init__(self, peer: Any, headers: dict[str, list[str]] | None = None) -> None:
        self.peer = peer
        self.requestHeaders = Headers({name: list(values) for name, values in (headers or {}).items()})

    def getClientAddress(self) -> Any:
        return self.peer


def test_an_ipv4_peer_resolves_to_its_host_and_port():
    """A TCP peer's client address is its IP and port, printed host:port as the log lines show it."""
    address = resolve_client_address(IPv4Address("TCP", "192.0.2.7", 5000))
    assert address == ClientAddress("192.0.2.7", 5000)
    assert str(address) == "192.0.2.7:5000"


def test_an_ipv6_peer_resolves_to_its_host_and_port():
    """An IPv6 peer keeps its address text and port."""
    assert resolve_client_address(IPv6Address("TCP", "2001:db8::1", 443)) == ClientAddress("2001:db8::1", 443)


@pytest.mark.parametrize("peer", [UNIXAddress(b"/run/wsdaemon.sock"), None])
def test_a_peer_without_an_ip_is_its_text_without_a_port(peer):
    """A UNIX-socket peer (or none at all) is named by its text, with no port."""
    address = resolve_client_address(peer)
    assert address.port is None
    assert address.host == str(peer)
    assert str(address) == str(peer)


def test_connections_are_counted_per_client_and_in_total():
    """Each connection counts once in total and once under its client; closing uncounts it, once."""
    admission = Admission()
    first, second = admission.connected(CLIENT), admission.connected(CLIENT)
    other = admission.connected(PROXY)
    assert (admission.open_connections, admission.clients()) == (3, {"198.51.100.7": 2, "10.0.0.2": 1})
    admission.disconnected(first)
    admission.disconnected(first)
    assert (admission.open_connections, admission.connections_from("198.51.100.7")) == (2, 1)
    admission.disconnected(second)
    admission.disconnected(other)
    assert (admission.open_connections, admission.clients()) == (0, {})


def test_max_connections_leaves_no_room_for_one_more():
    """room_for_connection is False once max_connections are open, and True again after one closes."""
    admission, limits = Admission(), Limits(max_connections=2)
    tickets = [admission.connected(CLIENT), admission.connected(PROXY)]
    assert not admission.room_for_connection(limits)
    admission.disconnected(tickets[0])
    assert admission.room_for_connection(limits)


def test_an_upgrade_over_max_connections_per_ip_is_refused_with_503():
    """A client holding more than max_connections_per_ip connections (this one included) gets 503 + Retry-After."""
    admission, limits = Admission(), Limits(max_connections_per_ip=2)
    tickets = [admission.connected(CLIENT) for _ in range(2)]
    admission.check_upgrade(tickets[1], limits, 0.0)
    third = admission.connected(CLIENT)
    with pytest.raises(ServiceUnavailable) as refused:
        admission.check_upgrade(third, limits, 0.0)
    assert refused.value.status == 503 and dict(refused.value.headers)["Retry-After"]
    admission.check_upgrade(admission.connected(PROXY), limits, 0.0)


def test_a_ticket_follows_its_client_when_the_transport_reports_another_peer():
    """When a request shows another client (a PROXY header read), the count moves with the ticket and leaves with it.

    The regression of the haproxy: listener bug: counted under the proxy, uncounted under the client.
    """
    admission = Admission()
    ticket = admission.connected(PROXY)
    assert admission.resolve(ticket, RequestFrom(CLIENT)).address == ClientAddress("198.51.100.7", 40001)
    assert ticket.address == ClientAddress("198.51.100.7", 40001)
    assert admission.clients() == {"198.51.100.7": 1}
    admission.disconnected(ticket)
    assert (admission.open_connections, admission.clients()) == (0, {})


def test_a_request_from_the_same_host_changes_no_count():
    """Resolving a request to the ticket's own host keeps the count as it is (only the port may change)."""
    admission = Admission()
    ticket = admission.connected(CLIENT)
    admission.resolve(ticket, RequestFrom(IPv4Address("TCP", "198.51.100.7", 1)))
    assert admission.clients() == {"198.51.100.7": 1}
    assert ticket.address.port == 1


def test_client_address_of_a_request_is_the_one_wsdaemon_resolved():
    """client_address reads request.clientAddress, and falls back to the transport's peer on a plain request."""
    request: Any = RequestFrom(IPv4Address("TCP", "192.0.2.50", 7))
    assert client_address(request) == ClientAddress("192.0.2.50", 7)
    request.clientAddress = ClientAddress("198.51.100.7", 40001)
    assert client_address(request) == ClientAddress("198.51.100.7", 40001)


def test_a_ticket_follows_the_client_a_trusted_proxy_names_and_back():
    """X-Forwarded-For from a trusted peer moves the count to the named client; the next request's answer moves it again."""
    admission, trusted = Admission(), (ip_network("10.0.0.0/8"),)
    ticket = admission.connected(PROXY)
    forwarded = admission.resolve(ticket, RequestFrom(PROXY, {"X-Forwarded-For": ["203.0.113.9"]}), trusted)
    assert forwarded.address == ClientAddress("203.0.113.9", None)
    assert admission.clients() == {"203.0.113.9": 1}
    admission.resolve(ticket, RequestFrom(PROXY, {"X-Forwarded-For": ["203.0.113.10"]}), trusted)
    assert admission.clients() == {"203.0.113.10": 1}
    admission.disconnected(ticket)
    assert (admission.open_connections, admission.clients()) == (0, {})


def test_forwarding_headers_from_an_untrusted_peer_change_no_count():
    """The same header from a peer outside trusted_networks leaves the connection under that peer."""
    admission = Admission()
    ticket = admission.connected(CLIENT)
    request = RequestFrom(CLIENT, {"X-Forwarded-For": ["203.0.113.9"], "X-Forwarded-Proto": ["https"]})
    assert admission.resolve(ticket, request, (ip_network("10.0.0.0/8"),)) == (
        ClientAddress("198.51.100.7", 40001),
        False,
    )
    assert admission.clients() == {"198.51.100.7": 1}


def test_upgrades_faster_than_the_rate_get_429_with_a_whole_second_retry_after():
    """After connection_burst_per_ip upgrades at once, the next gets 429; Retry-After is the wait rounded up."""
    admission, limits = Admission(), Limits(connection_rate_per_ip=0.5, connection_burst_per_ip=3)
    ticket = admission.connected(CLIENT)
    for _ in range(3):
        admission.check_upgrade(ticket, limits, 100.0)
    with pytest.raises(TooManyRequests) as refused:
        admission.check_upgrade(ticket, limits, 100.0)
    assert refused.value.status == 429
    assert refused.value.response_headers() == (("Retry-After", "2"),)
    admission.check_upgrade(admission.connected(PROXY), limits, 100.0)  # another client is not slowed
    admission.check_upgrade(ticket, limits, 102.0)  # one token back after 1 / rate seconds


def test_the_rate_is_counted_under_the_resolved_client():
    """Behind a trusted proxy each forwarded client has its own bucket, not the proxy's."""
    admission, limits = Admission(), Limits(connection_burst_per_ip=1)
    trusted = (ip_network("10.0.0.0/8"),)
    first, second = admission.connected(PROXY), admission.connected(PROXY)
    admission.resolve(first, RequestFrom(PROXY, {"X-Forwarded-For": ["203.0.113.1"]}), trusted)
    admission.resolve(second, RequestFrom(PROXY, {"X-Forwarded-For": ["203.0.113.2"]}), trusted)
    admission.check_upgrade(first, limits, 0.0)
    admission.check_upgrade(second, limits, 0.0)
    with pytest.raises(TooManyRequests):
        admission.check_upgrade(first, limits, 0.0)
