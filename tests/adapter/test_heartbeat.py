"""Keepalive pings, pong deadlines and the idle timeout of wsdaemon.adapter.protocol, on a memory clock.

Dead peers behind a NAT never send a FIN: only a ping that goes unanswered finds them.
No socket is opened and no reactor runs; time is ``MemoryReactorClock.advance``.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.error import ConnectionLost
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure

from tests.adapter.recording import RecordingHandler
from tests.helpers import client_frame, close_payload, parse_frames
from tests.web.stack import Stack
from wsdaemon.adapter.protocol import WebSocketLost, WebSocketWireProtocol
from wsdaemon.core import Connection, Limits, Side
from wsdaemon.core.frames import Opcode
from wsdaemon.stats import EndpointStats

CLOSE, PING, PONG, TEXT = Opcode.CLOSE, Opcode.PING, Opcode.PONG, Opcode.TEXT


class Peer:
    """One server-side connection with the keepalive on, seen from the client."""

    def __init__(self, keepalive: bool = True, **limits: Any) -> None:
        self.clock = MemoryReactorClock()
        self.handler = RecordingHandler()
        settings = Limits().replace(**limits)
        self.protocol = WebSocketWireProtocol(
            self.handler, Connection(Side.SERVER, settings), self.clock, path="/t", keepalive=keepalive
        )
        self.transport = StringTransport()
        self.protocol.makeConnection(self.transport)
        self.protocol.finishNegotiation()

    def frames(self) -> list[tuple[bool, int, bytes]]:
        """Frames the server wrote since the last call."""
        data = self.transport.value()
        self.transport.clear()
        return parse_frames(data, masked=False)

    def send(self, opcode: int, payload: bytes = b"") -> None:
        """The client sends one masked frame."""
        self.protocol.dataReceived(client_frame(opcode, payload))

    def answer_pings(self) -> int:
        """Answer every ping written so far with its pong; how many there were."""
        pings = [payload for _, opcode, payload in self.frames() if opcode == PING]
        for payload in pings:
            self.send(PONG, payload)
        return len(pings)


def test_no_ping_before_the_interval():
    """The first keepalive ping waits a whole ping_interval_seconds."""
    peer = Peer(ping_interval_seconds=20.0)
    peer.clock.advance(19.9)
    assert peer.frames() == []


def test_ping_is_sent_after_the_interval():
    """After ping_interval_seconds the server sends one Ping with a non-empty payload."""
    peer = Peer(ping_interval_seconds=20.0)
    peer.clock.advance(20)
    frames = peer.frames()
    assert [opcode for _, opcode, _ in frames] == [PING]
    assert frames[0][2]


def test_answered_pings_keep_the_connection_open():
    """A peer that answers every ping stays connected, with one ping per interval."""
    peer = Peer(ping_interval_seconds=20.0, pong_timeout_seconds=10.0, idle_timeout_seconds=3600.0)
    answered = 0
    for _ in range(10):
        peer.clock.advance(20)
        answered += peer.answer_pings()
    assert answered == 10
    assert not peer.transport.disconnecting


def test_missing_pong_closes_with_1011_keepalive_timeout():
    """No pong within pong_timeout_seconds: the server sends close 1011 "keepalive timeout" and closes TCP."""
    peer = Peer(ping_interval_seconds=20.0, pong_timeout_seconds=10.0)
    peer.clock.advance(20)
    assert [opcode for _, opcode, _ in peer.frames()] == [PING]
    peer.clock.advance(9.9)
    assert not peer.transport.disconnecting
    peer.clock.advance(0.1)
    assert peer.frames() == [(True, CLOSE, close_payload(1011, b"keepalive timeout"))]
    assert peer.transport.disconnecting


def test_keepalive_timeout_frees_a_peer_that_never_reads():
    """If TCP does not close after the keepalive failure, it is aborted at close_timeout_seconds."""
    peer = Peer(ping_interval_seconds=20.0, pong_timeout_seconds=10.0, close_timeout_seconds=5.0)
    peer.clock.pump([20, 10])
    assert peer.transport.disconnecting and not peer.transport.disconnected
    peer.clock.advance(5)
    assert peer.transport.disconnected


def test_handler_learns_1011_keepalive_timeout_when_tcp_is_gone():
    """The handler's connectionLost reports code 1011 and reason "keepalive timeout"."""
    peer = Peer(ping_interval_seconds=20.0, pong_timeout_seconds=10.0)
    peer.clock.pump([20, 10])
    peer.protocol.connectionLost(Failure(ConnectionLost()))
    lost = peer.handler.lost
    assert lost is not None and isinstance(lost.value, WebSocketLost)
    assert (lost.value.code, lost.value.reason) == (1011, "keepalive timeout")


def test_no_timer_is_left_after_connection_lost():
    """When TCP goes, the ping and pong timers go with it (nothing keeps the connection alive)."""
    peer = Peer(ping_interval_seconds=20.0)
    peer.clock.advance(20)  # a pong deadline is now armed
    peer.protocol.connectionLost(Failure(ConnectionLost()))
    assert [call for call in peer.clock.getDelayedCalls() if call.active()] == []


def test_a_pong_with_another_payload_does_not_count():
    """Only a pong echoing our keepalive ping's payload answers it (RFC 6455 §5.5.3)."""
    peer = Peer(ping_interval_seconds=20.0, pong_timeout_seconds=10.0)
    peer.clock.advance(20)
    peer.frames()
    peer.send(PONG, b"something else")
    peer.clock.advance(10)
    assert peer.frames()[-1] == (True, CLOSE, close_payload(1011, b"keepalive timeout"))


def test_keepalive_pongs_do_not_reach_the_handler():
    """The handler's pongReceived sees only pongs for its own pings, not the keepalive's."""
    peer = Peer(ping_interval_seconds=20.0, idle_timeout_seconds=3600.0)
    peer.clock.advance(20)
    peer.answer_pings()
    peer.send(PONG, b"handler's")
    assert [event for event in peer.handler.events if event[0] == "pong"] == [("pong", b"handler's")]


def test_keepalive_is_off_unless_asked_for():
    """A wire protocol built without keepalive (the client side) never pings."""
    peer = Peer(keepalive=False, ping_interval_seconds=1.0, idle_timeout_seconds=3600.0)
    peer.clock.advance(100)
    assert peer.frames() == []


def test_no_ping_once_closing():
    """After the handler started the close handshake, no keepalive ping is sent."""
    peer = Peer(ping_interval_seconds=20.0, close_timeout_seconds=60.0)
    peer.handler.transport.loseConnection(1000)
    peer.frames()
    peer.clock.advance(20)
    assert peer.frames() == []


# --- idle timeout with the keepalive running --------------------------------------------------


def test_keepalive_traffic_does_not_count_as_activity():
    """A connection that only answers pings is still idle: it is closed with 1001 at idle_timeout_seconds."""
    peer = Peer(ping_interval_seconds=10.0, pong_timeout_seconds=5.0, idle_timeout_seconds=60.0)
    for _ in range(5):
        peer.clock.advance(10)
        peer.answer_pings()
    peer.clock.advance(10)
    frames = peer.frames()
    assert (True, CLOSE, close_payload(1001, b"idle timeout")) in frames


def test_messages_keep_a_pinged_connection_from_idling():
    """A message within each idle period keeps the connection open, pings or not."""
    peer = Peer(ping_interval_seconds=10.0, pong_timeout_seconds=5.0, idle_timeout_seconds=60.0)
    for second in range(1, 181):
        peer.clock.advance(1)
        if second % 50 == 0:
            peer.send(TEXT, b"still here")
        peer.answer_pings()
    assert not peer.transport.disconnecting


# --- the daemon's endpoints ping -------------------------------------------------------------


def test_websocket_endpoints_ping_with_the_endpoint_limits():
    """An upgraded connection on a configured endpoint is pinged at that endpoint's ping_interval_seconds."""
    stack = Stack('[[endpoints]]\npath = "/echo"\nhandler = "echo"\n[endpoints.limits]\nping_interval_seconds = 5.0\n')
    peer = stack.upgraded("/echo")
    stack.clock.advance(4.9)
    assert peer.frames() == []
    stack.clock.advance(0.1)
    assert [opcode for _, opcode, _ in peer.frames()] == [PING]


def test_websocket_endpoint_closes_a_silent_peer_with_1011():
    """Through the whole stack, a peer that ignores pings gets close 1011 "keepalive timeout"."""
    stack = Stack()
    peer = stack.upgraded("/echo")
    stack.clock.pump([Limits().ping_interval_seconds, Limits().pong_timeout_seconds])
    assert peer.frames()[-1] == (True, CLOSE, close_payload(1011, b"keepalive timeout"))


def test_a_keepalive_pong_records_its_round_trip_for_metrics():
    """The pong of a keepalive ping 0.25 s after it went out lands in the endpoint's RTT histogram."""
    peer = Peer(ping_interval_seconds=20.0, pong_timeout_seconds=10.0)
    stats = EndpointStats()
    peer.protocol.stats = stats
    peer.clock.advance(20)
    pings = [payload for _, opcode, payload in peer.frames() if opcode == PING]
    peer.clock.advance(0.25)
    peer.send(PONG, pings[0])
    assert stats.ping_rtt.count == 1
    assert stats.ping_rtt.total == 0.25
    peer.send(PONG, b"someone else's")  # a handler's own pong is not a keepalive round trip
    assert stats.ping_rtt.count == 1
