"""The tcp relay handler (wsdaemon.handlers.tcp) on a MemoryReactorClock: no sockets.

A real backend and the backend-down case run in tests/integration/test_handlers.py.
"""

from __future__ import annotations

from typing import Any

import pytest
from twisted.application.service import MultiService
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone, ConnectionLost, ConnectionRefusedError
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.logger import capturedLogs
from twisted.python.failure import Failure

from wsdaemon.core import Limits
from wsdaemon.handlers.tcp import build_factory
from wsdaemon.interfaces import HandlerContext, HandlerOptionsError
from wsdaemon.plugins import discover_handlers
from wsdaemon.testing import MemoryClient, MemoryServer

OPTIONS = {"host": "127.0.0.1", "port": 5900}


def context(reactor: Any = None) -> HandlerContext:
    """What the daemon gives the factory: the reactor it connects with, and a service tree."""
    return HandlerContext(reactor if reactor is not None else MemoryReactorClock(), MultiService())


class Relay:
    """One client of a tcp endpoint, and the backend connection it asked for."""

    def __init__(self, options: dict[str, Any] | None = None, limits: Limits | None = None, **connect: Any) -> None:
        self.reactor = MemoryReactorClock()
        self.server = MemoryServer(
            {"/vnc": build_factory({**OPTIONS, **(options or {})}, "/vnc", context(self.reactor))},
            reactor=self.reactor,
            limits=limits,
        )
        self.client: MemoryClient = self.server.connect("/vnc", **connect)
        self.backend = StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", 5900))
        self.protocol: Any = None

    @property
    def factory(self) -> Any:
        return self.reactor.tcpClients[-1][2]

    def accept(self) -> Relay:
        """The backend accepts the connection."""
        self.protocol = self.factory.buildProtocol(self.backend.getPeer())
        self.protocol.makeConnection(self.backend)
        self.server.pump()
        return self

    def backend_received(self) -> bytes:
        data = self.backend.value()
        self.backend.clear()
        return data


# --- options ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "option", "expected"),
    [
        ({"port": 5900}, "host", "host name or IP address"),
        ({"host": "", "port": 5900}, "host", "host name or IP address"),
        ({"host": "127.0.0.1"}, "port", "an integer from 1 to 65535"),
        ({"host": "127.0.0.1", "port": 70000}, "port", "an integer from 1 to 65535"),
        ({"host": "127.0.0.1", "port": "5900"}, "port", "an integer from 1 to 65535"),
        (
            {"host": "127.0.0.1", "port": 5900, "connect_timeout_seconds": 0},
            "connect_timeout_seconds",
            "a number from 0.1",
        ),
    ],
)
def test_bad_or_missing_option_is_reported(options, option, expected):
    """host and port are required; each wrong option raises HandlerOptionsError naming it."""
    with pytest.raises(HandlerOptionsError) as raised:
        build_factory(options, "/vnc", context())
    assert raised.value.option == option and expected in raised.value.expected


def test_plugin_declares_every_option_the_module_reads():
    """The plugin descriptor lists exactly the options the module accepts."""
    plugin = discover_handlers()["tcp"]
    values = {"host": "backend.example", "port": 5901, "connect_timeout_seconds": 2.5}
    assert set(plugin.options) == set(values)
    assert plugin.buildFactory(values, "/vnc", context()).settings.connect_timeout_seconds == 2.5


# --- relaying ----------------------------------------------------------------------------------------------


def test_each_connection_connects_to_the_configured_backend():
    """A connection opens a TCP connection to host:port with the configured timeout; the client cannot choose."""
    relay = Relay({"connect_timeout_seconds": 3}, headers=[("X-Backend", "evil.example:22")])
    host, port, _, timeout, _ = relay.reactor.tcpClients[0]
    assert (host, port, timeout) == ("127.0.0.1", 5900, 3.0)
    relay.server.connect("/vnc")
    assert len(relay.reactor.tcpClients) == 2


def test_bytes_flow_both_ways_as_binary_messages():
    """Backend bytes arrive as binary messages; binary and text messages reach the backend as bytes."""
    relay = Relay().accept()
    relay.protocol.dataReceived(b"RFB 003.008\n")
    assert relay.client.received() == [b"RFB 003.008\n"]
    relay.client.send_bytes(b"\x01\x02")
    relay.client.send_text("é")
    assert relay.backend_received() == b"\x01\x02" + "é".encode()


def test_peer_is_not_read_until_the_backend_is_connected():
    """Messages sent before the backend answers wait (unread) and then reach it in order."""
    relay = Relay()
    relay.client.send_bytes(b"early-1")
    relay.client.send_bytes(b"early-2")
    assert relay.client.transport.producerState == "paused"
    relay.accept()
    relay.client.send_bytes(b"late")
    assert relay.backend_received() == b"early-1early-2late"


def test_backend_down_closes_with_1011_and_a_reason():
    """A backend that refuses the connection closes the WebSocket with 1011 "backend unavailable"."""
    relay = Relay()
    with capturedLogs() as events:
        relay.factory.clientConnectionFailed(relay.reactor.connectors[0], Failure(ConnectionRefusedError()))
    assert relay.client.close_code == 1011
    assert relay.client.close_reason == "backend unavailable"
    assert any("unavailable" in event.get("log_format", "") for event in events)


def test_backend_closing_cleanly_closes_with_1000():
    """When the backend closes its end, the WebSocket is closed with 1000."""
    relay = Relay().accept()
    relay.protocol.dataReceived(b"bye")
    relay.protocol.connectionLost(Failure(ConnectionDone()))
    assert relay.client.received() == [b"bye"]
    assert relay.client.close_code == 1000


def test_backend_connection_lost_closes_with_1011():
    """A backend connection that breaks (reset) closes the WebSocket with 1011."""
    relay = Relay().accept()
    with capturedLogs():
        relay.protocol.connectionLost(Failure(ConnectionLost()))
    assert relay.client.close_code == 1011 and relay.client.close_reason == "backend connection lost"


def test_closing_the_websocket_closes_the_backend():
    """When the peer closes, the backend connection is closed too."""
    relay = Relay().accept()
    relay.client.close()
    assert relay.backend.disconnecting


def test_closing_before_the_backend_answers_stops_connecting():
    """A peer that leaves while the backend is still connecting stops the attempt; a late connect is dropped."""
    relay = Relay()
    relay.client.disconnect()
    assert relay.reactor.connectors[0]._disconnected
    relay.accept()
    assert relay.backend.disconnecting


# --- subprotocols -------------------------------------------------------------------------------------------


def test_binary_subprotocol_is_accepted_for_novnc():
    """A client asking for the "binary" subprotocol (noVNC) gets it, on an endpoint that lists none."""
    relay = Relay(subprotocols=["binary"])
    assert relay.client.subprotocol == "binary"
    assert Relay().client.subprotocol is None


def test_relay_connects_with_the_daemons_reactor_not_the_requests():
    """The backend connection is made on the reactor the daemon lent the factory, not on request.site.reactor."""
    daemon_reactor = MemoryReactorClock()
    server = MemoryServer(
        {"/vnc": build_factory(OPTIONS, "/vnc", context(daemon_reactor))}, reactor=MemoryReactorClock()
    )
    assert server.connect("/vnc").accepted
    assert [client[:2] for client in daemon_reactor.tcpClients] == [("127.0.0.1", 5900)]
    assert server.reactor.tcpClients == []


def test_endpoint_subprotocols_replace_the_default():
    """An endpoint that lists its own subprotocols offers those, not "binary"."""
    server = MemoryServer(
        {"/vnc": build_factory(OPTIONS, "/vnc", context())}, reactor=MemoryReactorClock(), subprotocols=["vnc.v1"]
    )
    assert server.connect("/vnc", subprotocols=["binary"]).subprotocol is None
    assert server.connect("/vnc", subprotocols=["vnc.v1"]).subprotocol == "vnc.v1"


# --- backpressure ---------------------------------------------------------------------------------------------


def test_slow_peer_pauses_reading_the_backend():
    """A peer that does not read pauses the backend connection's reading; reading again resumes it."""
    relay = Relay(limits=Limits(write_buffer_high_bytes=1024)).accept()
    relay.client.pause_reading()
    for _ in range(20):
        relay.protocol.dataReceived(b"z" * 100)
    assert relay.backend.producerState == "paused"
    relay.client.resume_reading()
    assert relay.backend.producerState == "producing"
    assert len(relay.client.received()) == 20


def test_slow_backend_pauses_reading_the_peer():
    """A backend whose write buffer is full stops the reading of the peer until it drains."""
    relay = Relay().accept()
    relay.backend.producer.pauseProducing()
    relay.client.send_bytes(b"held")
    assert relay.backend_received() == b""
    relay.backend.producer.resumeProducing()
    relay.server.pump()
    assert relay.backend_received() == b"held"
