"""The same-port switch from HTTP to WebSocket, and the per-listener accounting (wsdaemon.adapter.switching).

A ``SwitchingFactory`` wraps a ``DaemonSite`` whose resources call
``switchTo`` the way ``WebSocketResource`` does, with a plain recording
protocol standing in for the WebSocket side, so only the wrapper is under test.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.interfaces import ITCPTransport
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET
from zope.interface import implementer

from tests.web.stack import parse_response, parse_responses
from wsdaemon.adapter.switching import SwitchingFactory, SwitchingProtocol
from wsdaemon.config import default_config
from wsdaemon.core import Limits
from wsdaemon.web.site import DaemonSite

HEAD_101 = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: test\r\nConnection: Upgrade\r\n\r\n"


class Upgraded(Protocol):
    """The protocol a connection switches to; records what reaches it."""

    def __init__(self, log: list[str]) -> None:
        self.log = log
        self.received = b""
        self.lost: Failure | None = None

    def connectionMade(self) -> None:
        self.log.append("upgraded connectionMade")
        self.transport.write(b"<upgraded hello>")

    def dataReceived(self, data: bytes) -> None:
        self.received += data

    def connectionLost(self, reason: Failure | None = None) -> None:
        self.lost = reason
        self.log.append("upgraded connectionLost")


class SwitchResource(Resource):
    """GET switches the connection to an :class:`Upgraded` protocol, as WebSocketResource does."""

    isLeaf = True

    def __init__(self, log: list[str]) -> None:
        super().__init__()
        self.log = log
        self.upgraded: list[Upgraded] = []

    def render_GET(self, request: Any) -> int:
        protocol = Upgraded(self.log)
        self.upgraded.append(protocol)
        request.notifyFinish().addErrback(lambda _: self.log.append("http request told of connectionLost"))
        request.channel.transport.switchTo(protocol, HEAD_101)
        return NOT_DONE_YET


class HoldResource(Resource):
    """GET is answered only when the test says so (a slow response)."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.held: list[Any] = []

    def render_GET(self, request: Any) -> int:
        self.held.append(request)
        return NOT_DONE_YET


class Text(Resource):
    isLeaf = True

    def render_GET(self, request: Any) -> bytes:
        return b"plain http"


class Listener:
    """A SwitchingFactory around a DaemonSite with /switch, /hold and /text."""

    def __init__(self, **limit_changes: Any) -> None:
        self.clock = MemoryReactorClock()
        self.log: list[str] = []
        self.limits = Limits().replace(**limit_changes)
        root = Resource()
        self.switch = SwitchResource(self.log)
        self.hold = HoldResource()
        root.putChild(b"switch", self.switch)
        root.putChild(b"hold", self.hold)
        root.putChild(b"text", Text())
        site = DaemonSite(root, default_config(), self.clock)
        self.factory = SwitchingFactory(site, self.limits, self.clock)

    def connect(
        self, host: str = "192.0.2.1", port: int = 5000, transport: StringTransport | None = None
    ) -> tuple[SwitchingProtocol, StringTransport]:
        address = IPv4Address("TCP", host, port)
        protocol = self.factory.buildProtocol(address)
        assert protocol is not None
        transport = transport or StringTransport(peerAddress=address)
        protocol.makeConnection(transport)
        return protocol, transport


def get(path: str, *extra: str) -> bytes:
    return ("\r\n".join([f"GET {path} HTTP/1.1", "Host: example", *extra]) + "\r\n\r\n").encode()


# --- the switch -------------------------------------------------------------------------


def test_bytes_go_to_http_before_the_switch():
    """Until a resource switches, the connection speaks HTTP through the Site."""
    listener = Listener()
    protocol, transport = listener.connect()
    protocol.dataReceived(get("/text"))
    response = parse_response(transport.value())
    assert (response.status, response.body) == (200, b"plain http")


def test_bytes_go_to_the_switched_protocol_after_the_switch():
    """After switchTo, every byte goes to the new protocol and none is parsed as HTTP."""
    listener = Listener()
    protocol, transport = listener.connect()
    protocol.dataReceived(get("/switch"))
    transport.clear()
    protocol.dataReceived(b"\x81\x00")
    protocol.dataReceived(get("/text"))
    upgraded = listener.switch.upgraded[0]
    assert upgraded.received == b"\x81\x00" + get("/text")
    assert transport.value() == b""  # no HTTP response to the bytes that looked like a request


def test_switch_writes_the_head_before_anything_the_new_protocol_writes():
    """The 101 head goes out first, then whatever the new protocol writes in connectionMade."""
    listener = Listener()
    protocol, transport = listener.connect()
    protocol.dataReceived(get("/switch"))
    assert transport.value() == HEAD_101 + b"<upgraded hello>"


def test_switched_protocol_is_connected_to_the_same_connection():
    """The new protocol is connected to this connection (same peer) and the wrapper remembers it."""
    listener = Listener()
    protocol, transport = listener.connect("192.0.2.44")
    protocol.dataReceived(get("/switch"))
    upgraded = listener.switch.upgraded[0]
    assert protocol.upgraded is upgraded
    assert upgraded.transport.getPeer() == transport.getPeer()
    transport.clear()
    upgraded.transport.write(b"frame bytes")
    assert transport.value() == b"frame bytes"


def test_switch_hands_producer_registration_to_the_new_protocol():
    """The HTTP channel's producer registration is dropped, so the new protocol can register its own."""
    listener = Listener()
    protocol, transport = listener.connect()
    protocol.dataReceived(get("/switch"))
    assert transport.producer is None
    upgraded = listener.switch.upgraded[0]
    upgraded.transport.registerProducer(upgraded, True)  # would raise if the channel were still registered
    assert transport.producer is upgraded


def test_switch_resumes_reading():
    """The switch leaves the transport reading, although HTTP paused it while serving the request."""
    listener = Listener()
    protocol, transport = listener.connect()
    protocol.dataReceived(get("/switch"))
    assert transport.producerState == "producing"


def test_switch_on_the_second_request_of_a_keep_alive_connection():
    """A connection that first served a plain request can still switch on its next request."""
    listener = Listener()
    protocol, transport = listener.connect()
    protocol.dataReceived(get("/text"))
    protocol.dataReceived(get("/switch"))
    first = parse_response(transport.value())
    assert first.status == 200
    assert first.rest == HEAD_101 + b"<upgraded hello>"
    protocol.dataReceived(b"frames")
    assert listener.switch.upgraded[0].received == b"frames"


# --- connection loss ----------------------------------------------------------------------


def test_connection_lost_after_a_switch_reaches_only_the_switched_protocol():
    """After the switch, the end of TCP goes to the WebSocket protocol; the HTTP channel was let go."""
    listener = Listener()
    protocol, _ = listener.connect()
    protocol.dataReceived(get("/switch"))
    assert protocol.wrappedProtocol is listener.switch.upgraded[0]
    reason = Failure(ConnectionLost("gone"))
    protocol.connectionLost(reason)
    assert listener.log[-1] == "upgraded connectionLost"
    assert "http request told of connectionLost" not in listener.log
    assert listener.switch.upgraded[0].lost is reason


def test_switch_releases_the_http_channel():
    """Nothing keeps the HTTP channel alive after the switch (memory per open WebSocket)."""
    import gc
    import weakref

    listener = Listener()
    protocol, _ = listener.connect()
    channel = weakref.ref(protocol.wrappedProtocol)
    protocol.dataReceived(get("/switch"))
    gc.collect()
    assert channel() is None


def test_connection_lost_without_switch_reaches_only_http():
    """A connection that never switched just ends its HTTP channel (and its pending request)."""
    listener = Listener()
    protocol, _ = listener.connect()
    protocol.dataReceived(get("/hold"))
    finished = listener.hold.held[0].notifyFinish()
    errors: list[Failure] = []
    finished.addErrback(errors.append)
    protocol.connectionLost(Failure(ConnectionDone()))
    assert len(errors) == 1


def test_connection_lost_leaves_no_timer():
    """A closed connection leaves no handshake timer on the reactor."""
    listener = Listener()
    protocol, _ = listener.connect()
    protocol.dataReceived(b"GET /text HTTP/1.1\r\n")
    protocol.connectionLost(Failure(ConnectionDone()))
    assert [call for call in listener.clock.getDelayedCalls() if call.active()] == []


def test_connection_lost_during_a_slow_response_leaves_no_timer():
    """A peer that disconnects while its request is still being answered leaves no handshake timer behind."""
    listener = Listener()
    protocol, _ = listener.connect()
    protocol.dataReceived(get("/hold"))
    protocol.connectionLost(Failure(ConnectionLost()))
    assert [call for call in listener.clock.getDelayedCalls() if call.active()] == []


# --- handshake deadline -----------------------------------------------------------------


def test_silent_connection_is_closed_at_the_handshake_timeout():
    """A connection that sends nothing is closed after handshake_timeout_seconds, not before."""
    listener = Listener(handshake_timeout_seconds=10.0)
    _, transport = listener.connect()
    listener.clock.advance(9.9)
    assert not transport.disconnecting
    listener.clock.advance(0.1)
    assert transport.disconnecting


def test_partial_request_head_is_closed_at_the_handshake_timeout():
    """A client trickling a request head (slowloris) is closed when the handshake time is up."""
    listener = Listener(handshake_timeout_seconds=10.0)
    protocol, transport = listener.connect()
    for second in range(10):
        protocol.dataReceived(f"X-Header-{second}: trickle\r\n".encode() if second else b"GET /text HTTP/1.1\r\n")
        listener.clock.advance(1)
    assert transport.disconnecting


def test_handshake_timer_stops_while_a_request_is_served():
    """Once a complete request head arrived, a slow response is not cut off by the handshake timer."""
    listener = Listener(handshake_timeout_seconds=10.0)
    protocol, transport = listener.connect()
    protocol.dataReceived(get("/hold"))
    listener.clock.advance(60)
    assert not transport.disconnecting
    request = listener.hold.held[0]
    request.write(b"late answer")
    request.finish()
    assert parse_response(transport.value()).status == 200


def test_handshake_timer_is_rearmed_after_a_keep_alive_response():
    """After a response on a kept-alive connection, the next request head has a fresh handshake timeout."""
    listener = Listener(handshake_timeout_seconds=10.0)
    protocol, transport = listener.connect()
    listener.clock.advance(9)
    protocol.dataReceived(get("/hold"))
    listener.clock.advance(30)
    request = listener.hold.held[0]
    request.finish()
    listener.clock.advance(9.9)
    assert not transport.disconnecting
    listener.clock.advance(0.1)
    assert transport.disconnecting


def test_quick_keep_alive_responses_each_get_a_fresh_handshake_timeout():
    """A client sending a request every few seconds is never cut off by the handshake timeout."""
    listener = Listener(handshake_timeout_seconds=10.0)
    protocol, transport = listener.connect()
    for _ in range(5):
        listener.clock.advance(8)
        protocol.dataReceived(get("/text"))
    assert not transport.disconnecting
    assert [r.status for r in parse_responses(transport.value())] == [200] * 5


def test_switched_connection_has_no_handshake_timeout():
    """After the switch, the handshake timer is gone: the new protocol owns its own timers."""
    listener = Listener(handshake_timeout_seconds=10.0)
    protocol, transport = listener.connect()
    protocol.dataReceived(get("/switch"))
    listener.clock.advance(3600)
    assert not transport.disconnecting


# --- connection accounting ----------------------------------------------------------------


def test_max_connections_refuses_the_next_connection():
    """With max_connections open, buildProtocol returns None, so the reactor closes the new connection."""
    listener = Listener(max_connections=2)
    listener.connect(port=1)
    listener.connect(port=2)
    assert listener.factory.buildProtocol(IPv4Address("TCP", "192.0.2.9", 3)) is None


def test_a_closed_connection_frees_its_slot():
    """When one of max_connections closes, a new connection is accepted again."""
    listener = Listener(max_connections=2)
    first, _ = listener.connect(port=1)
    listener.connect(port=2)
    first.connectionLost(Failure(ConnectionDone()))
    assert listener.factory.buildProtocol(IPv4Address("TCP", "192.0.2.9", 3)) is not None


def test_connections_are_counted_per_peer_address_up_and_down():
    """The admission counts open connections per peer IP, and forgets an address with none left."""
    listener = Listener()
    a1, _ = listener.connect("192.0.2.1", 1)
    a2, _ = listener.connect("192.0.2.1", 2)
    b1, _ = listener.connect("192.0.2.2", 3)
    factory = listener.factory
    assert (factory.admission.connections_from("192.0.2.1"), factory.admission.connections_from("192.0.2.2")) == (2, 1)
    a1.connectionLost(Failure(ConnectionDone()))
    assert factory.admission.connections_from("192.0.2.1") == 1
    a2.connectionLost(Failure(ConnectionDone()))
    b1.connectionLost(Failure(ConnectionDone()))
    assert factory.admission.connections_from("192.0.2.1") == 0
    assert factory.admission.clients() == {}
    assert factory.protocols == {}


def test_upgraded_connection_is_still_counted_until_it_closes():
    """A connection stays counted after switching to WebSocket, until TCP closes."""
    listener = Listener()
    protocol, _ = listener.connect("192.0.2.7")
    protocol.dataReceived(get("/switch"))
    assert listener.factory.admission.connections_from("192.0.2.7") == 1
    protocol.connectionLost(Failure(ConnectionDone()))
    assert listener.factory.admission.connections_from("192.0.2.7") == 0


# --- TCP_NODELAY ----------------------------------------------------------------------------


@implementer(ITCPTransport)
class TCPStringTransport(StringTransport):
    """A StringTransport that claims to be TCP and records setTcpNoDelay."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.nodelay: list[bool] = []

    def setTcpNoDelay(self, enabled: bool) -> None:
        self.nodelay.append(enabled)

    def getTcpNoDelay(self) -> bool:
        return bool(self.nodelay and self.nodelay[-1])


def bare_factory() -> SwitchingFactory:
    """The wrapper around a factory whose protocol does nothing, so only the wrapper acts."""
    return SwitchingFactory(Factory.forProtocol(Protocol), Limits(), MemoryReactorClock())


def test_tcp_nodelay_is_set_on_tcp_connections():
    """Every accepted TCP connection gets TCP_NODELAY, so small frames are not delayed by Nagle."""
    factory = bare_factory()
    address = IPv4Address("TCP", "192.0.2.1", 1)
    transport = TCPStringTransport(peerAddress=address)
    factory.buildProtocol(address).makeConnection(transport)
    assert transport.getTcpNoDelay() is True


def test_non_tcp_transport_is_accepted_without_nodelay():
    """A transport that is not TCP (e.g. a UNIX socket) is served without trying to set TCP_NODELAY."""
    factory = bare_factory()
    address = IPv4Address("TCP", "192.0.2.1", 1)
    protocol = factory.buildProtocol(address)
    protocol.makeConnection(StringTransport(peerAddress=address))
    assert factory.admission.connections_from("192.0.2.1") == 1


def test_local_address_is_asked_of_the_socket_once():
    """twisted.web asks for the host address on every request; the socket is asked once (a syscall saved)."""

    class CountingTransport(StringTransport):
        asked = 0

        def getHost(self) -> IPv4Address:
            self.asked += 1
            return IPv4Address("TCP", "127.0.0.1", 8080)

    protocol = bare_factory().buildProtocol(IPv4Address("TCP", "192.0.2.1", 1))
    transport = CountingTransport()
    protocol.makeConnection(transport)
    assert [protocol.getHost(), protocol.getHost()] == [IPv4Address("TCP", "127.0.0.1", 8080)] * 2
    assert transport.asked == 1
