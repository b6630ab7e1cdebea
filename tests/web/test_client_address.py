"""The client address over the full listener stack: one admission counts, checks and names each connection.

A PROXY-protocol listener is built with Twisted's public ``proxyEndpoint``
around an endpoint that only records the factory it is asked to listen with,
so the real ``haproxy:`` wrapper runs over a ``StringTransport``, no socket.
"""

from __future__ import annotations

from typing import Any, ClassVar

from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IProtocolFactory, IStreamServerEndpoint
from twisted.internet.testing import StringTransport
from twisted.logger import capturedLogs
from twisted.protocols.haproxy import proxyEndpoint
from zope.interface import implementer

from tests.adapter.recording import RecordingFactory
from tests.helpers import Opcode
from tests.web.stack import PEER_IP, Peer, Stack, upgrade_request
from wsdaemon.admission import Admission, AdmissionTicket
from wsdaemon.core import HandshakeError, Limits
from wsdaemon.interfaces import ClientAddress

PROXY_IP = "10.0.0.2"


class TooManyRequests(HandshakeError):
    """What a rate limit would answer: 429 with Retry-After (a status the core has no class for yet)."""

    status: ClassVar[int] = 429
    headers: ClassVar[tuple[tuple[str, str], ...]] = (("Retry-After", "1"),)


class RefusingAdmission(Admission):
    """An admission that refuses every upgrade, and records whom it was asked about."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: list[ClientAddress] = []

    def check_upgrade(self, ticket: AdmissionTicket, limits: Limits, now: float) -> None:
        self.asked.append(ticket.address)
        raise TooManyRequests("slow down")


@implementer(IStreamServerEndpoint)
class RecordingEndpoint:
    """A server endpoint that listens on nothing: it keeps the factory it was given."""

    factory: IProtocolFactory | None = None

    def listen(self, factory: IProtocolFactory) -> Deferred[Any]:
        self.factory = factory
        return succeed(None)


def proxy_listener(stack: Stack) -> IProtocolFactory:
    """The factory a ``haproxy:`` listener serves ``stack`` with (Twisted's PROXY wrapper around it)."""
    endpoint = RecordingEndpoint()
    proxyEndpoint(endpoint).listen(stack.factory)
    assert endpoint.factory is not None
    return endpoint.factory


def proxied(listener: IProtocolFactory, client: str, port: int, path: str = "/chat") -> tuple[Peer, int]:
    """A connection from the proxy carrying ``client``'s upgrade request: the peer and the answer's status."""
    proxy = IPv4Address("TCP", PROXY_IP, 50000 + port)
    protocol = listener.buildProtocol(proxy)
    assert protocol is not None
    transport = StringTransport(hostAddress=IPv4Address("TCP", "127.0.0.1", 8080), peerAddress=proxy)
    protocol.makeConnection(transport)
    peer = Peer(protocol, transport)  # type: ignore[arg-type]  # the PROXY wrapper stands in for the switch
    header = f"PROXY TCP4 {client} 127.0.0.1 {port} 8080\r\n".encode()
    return peer, peer.request(header + upgrade_request(path)).status


def chat_stack(per_ip: int = 256, admission: Admission | None = None) -> Stack:
    """A stack with /chat and /room, ``max_connections_per_ip = per_ip``."""
    endpoints = "".join(f'[[endpoints]]\npath = "{path}"\nhandler = "echo"\n' for path in ("/chat", "/room"))
    text = f"[limits]\nmax_connections_per_ip = {per_ip}\n{endpoints}"
    return Stack(text, admission=admission)


# --- the seam: the endpoint asks the admission ---------------------------------------------


def test_an_admission_refusing_answers_with_its_status_before_any_handler():
    """An injected admission that refuses is asked about this client, and its 429 goes out; no handler is built."""
    admission = RefusingAdmission()
    stack = chat_stack(admission=admission)
    response = stack.connect(host="192.0.2.44", port=4321).request(upgrade_request("/chat"))
    assert (response.status, response.header("retry-after"), response.body) == (429, "1", b"slow down\n")
    assert admission.asked == [ClientAddress("192.0.2.44", 4321)]
    assert stack.factories["/chat"].requests == []


def test_listener_and_endpoints_share_one_admission():
    """The connection the listener counted is the one the endpoint checks: one admission object for both."""
    stack = chat_stack(per_ip=1)
    stack.upgraded("/chat")
    assert stack.factory.admission.connections_from(PEER_IP) == 1
    assert stack.connect().request(upgrade_request("/room")).status == 503


# --- what handlers and logs see -----------------------------------------------------------------


def test_handler_sees_the_client_address_on_the_request_and_the_transport():
    """buildProtocol's request.clientAddress and the transport's clientAddress are the admission's address."""
    stack = chat_stack()
    peer = stack.connect(host="192.0.2.9", port=6000)
    assert peer.request(upgrade_request("/chat")).status == 101
    factory: RecordingFactory = stack.factories["/chat"]
    (request,) = factory.requests
    (handler,) = factory.handlers
    assert request.clientAddress == ClientAddress("192.0.2.9", 6000)
    assert handler.transport.clientAddress is request.clientAddress
    assert handler.transport.getPeer() == IPv4Address("TCP", "192.0.2.9", 6000)


def test_every_http_request_carries_its_client_address():
    """Not only upgrades: any request served by the site has request.clientAddress set before it renders."""
    stack = chat_stack()
    peer = stack.connect(host="192.0.2.10", port=6001)
    peer.request(upgrade_request("/chat"))
    (request,) = stack.factories["/chat"].requests
    assert str(request.clientAddress) == "192.0.2.10:6001"


# --- the haproxy: listener (the PROXY protocol) ---------------------------------------------


def test_proxied_connections_are_uncounted_under_the_name_they_were_counted_under():
    """After proxied connections close, nothing stays counted, and a direct client at the proxy's address gets in.

    The regression of a bug: counted under the proxy, checked and uncounted under the client,
    the proxy's count only grew until every direct client from its address got 503.
    """
    stack = chat_stack(per_ip=1)
    listener = proxy_listener(stack)
    for port in (1, 2, 3):
        peer, status = proxied(listener, f"198.51.100.{port}", port)
        assert status == 101
        peer.lose()
    assert stack.factory.admission.clients() == {}
    assert stack.connect(host=PROXY_IP).request(upgrade_request("/chat")).status == 101


def test_per_ip_limit_applies_to_the_proxied_client_not_to_the_proxy():
    """Through one proxy, a client at max_connections_per_ip gets 503 while another client still gets in."""
    stack = chat_stack(per_ip=1)
    listener = proxy_listener(stack)
    assert proxied(listener, "198.51.100.7", 1)[1] == 101
    assert proxied(listener, "198.51.100.7", 2)[1] == 503
    assert proxied(listener, "198.51.100.8", 3)[1] == 101
    assert stack.factory.admission.clients() == {"198.51.100.7": 2, "198.51.100.8": 1}


def test_summary_line_names_the_proxied_client():
    """The per-connection log line shows the client the PROXY header named, not the proxy."""
    stack = chat_stack()
    listener = proxy_listener(stack)
    peer, status = proxied(listener, "198.51.100.7", 40001)
    assert status == 101
    with capturedLogs() as events:
        peer.send_frame(Opcode.CLOSE, b"\x03\xe8")
        peer.lose()
    (summary,) = [event for event in events if "summary" in event]
    assert summary["peer"] == "198.51.100.7:40001"
    assert "peer=198.51.100.7:40001 " in summary["summary"]


def test_handshake_timeout_log_names_the_client():
    """A connection that never completes a request is logged under its admission address when it times out."""
    stack = chat_stack()
    peer = stack.connect(host="192.0.2.77", port=7000)
    with capturedLogs() as events:
        stack.clock.advance(stack.config.limits.handshake_timeout_seconds + 1)
    assert peer.transport.disconnecting
    assert any(event.get("peer") == "192.0.2.77:7000" for event in events)


# --- a trusted reverse proxy's forwarding headers ([proxy] trusted_networks) ------------------


def proxied_stack(per_ip: int = 256) -> Stack:
    """chat_stack behind a proxy in 10.0.0.0/8."""
    endpoints = "".join(f'[[endpoints]]\npath = "{path}"\nhandler = "echo"\n' for path in ("/chat", "/room"))
    text = f'[proxy]\ntrusted_networks = ["10.0.0.0/8"]\n[limits]\nmax_connections_per_ip = {per_ip}\n{endpoints}'
    return Stack(text)


def forwarded_upgrade(stack: Stack, peer_host: str, headers: list[tuple[str, str]], port: int = 50000) -> int:
    return stack.connect(host=peer_host, port=port).request(upgrade_request("/chat", headers=headers)).status


def test_x_forwarded_for_from_a_trusted_proxy_decides_the_per_ip_limit():
    """Behind a trusted proxy each client has its own max_connections_per_ip; the proxy's address has none counted."""
    stack = proxied_stack(per_ip=1)
    assert forwarded_upgrade(stack, PROXY_IP, [("X-Forwarded-For", "198.51.100.7")], 1) == 101
    assert forwarded_upgrade(stack, PROXY_IP, [("X-Forwarded-For", "198.51.100.7")], 2) == 503
    assert forwarded_upgrade(stack, PROXY_IP, [("X-Forwarded-For", "198.51.100.8")], 3) == 101
    assert stack.factory.admission.clients() == {"198.51.100.7": 2, "198.51.100.8": 1}
    (first, second) = stack.factories["/chat"].requests
    assert (first.clientAddress, second.clientAddress) == (ClientAddress("198.51.100.7"), ClientAddress("198.51.100.8"))


def test_x_forwarded_for_from_an_untrusted_peer_is_ignored():
    """A client outside trusted_networks cannot dodge its limit by naming someone else."""
    stack = proxied_stack(per_ip=1)
    assert forwarded_upgrade(stack, "192.0.2.5", [("X-Forwarded-For", "198.51.100.7")], 1) == 101
    assert forwarded_upgrade(stack, "192.0.2.5", [("X-Forwarded-For", "198.51.100.8")], 2) == 503
    assert stack.factory.admission.clients() == {"192.0.2.5": 2}


def test_the_summary_line_names_the_forwarded_client():
    """The per-connection log line shows the client X-Forwarded-For named, not the trusted proxy."""
    stack = proxied_stack()
    peer = stack.connect(host=PROXY_IP)
    assert peer.request(upgrade_request("/chat", headers=[("Forwarded", 'for="[2001:db8::7]:4711"')])).status == 101
    with capturedLogs() as events:
        peer.send_frame(Opcode.CLOSE, b"\x03\xe8")
        peer.lose()
    (summary,) = [event for event in events if "summary" in event]
    assert summary["peer"] == "2001:db8::7:4711"


def test_x_forwarded_proto_https_from_a_trusted_proxy_makes_the_request_secure():
    """The handler's request says isSecure() and builds https URLs when the trusted proxy terminated TLS."""
    stack = proxied_stack()
    headers = [("X-Forwarded-For", "198.51.100.7"), ("X-Forwarded-Proto", "https")]
    assert forwarded_upgrade(stack, PROXY_IP, headers) == 101
    assert forwarded_upgrade(stack, "192.0.2.5", headers) == 101
    trusted, untrusted = stack.factories["/chat"].requests
    assert trusted.isSecure() and trusted.prePathURL().startswith(b"https://")
    assert not untrusted.isSecure() and untrusted.prePathURL().startswith(b"http://")
