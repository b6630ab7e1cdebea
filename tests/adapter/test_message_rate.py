"""An endpoint's message_rate on one connection (wsdaemon.adapter.message_rate): over it, the core closes with 1008.

The gate runs between a real WebSocketWireProtocol and a recording handler, over a
StringTransport with a MemoryReactorClock.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.error import ConnectionLost
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure

from tests.adapter.recording import RecordingHandler
from tests.helpers import client_frame, close_payload, parse_frames
from wsdaemon.adapter.message_rate import MessageRateGate
from wsdaemon.adapter.protocol import WebSocketWireProtocol
from wsdaemon.core import Connection, Limits, Side
from wsdaemon.core.frames import Opcode
from wsdaemon.ratelimit import MessageRate


def rated(
    rate: MessageRate | None,
) -> tuple[WebSocketWireProtocol, StringTransport, MemoryReactorClock, RecordingHandler]:
    """A server connection after the 101 with ``rate`` as its endpoint's message rate."""
    clock, handler, transport = MemoryReactorClock(), RecordingHandler(), StringTransport()
    connection = Connection(Side.SERVER, Limits())
    gated: Any = handler if rate is None else MessageRateGate(handler, connection, rate, clock)
    protocol = WebSocketWireProtocol(gated, connection, clock)
    protocol.makeConnection(transport)
    protocol.finishNegotiation()
    return protocol, transport, clock, handler


def texts(handler: RecordingHandler) -> list[str]:
    return [value for name, value in handler.events if name == "text"]


def test_messages_within_the_burst_reach_the_handler():
    """message_burst messages at once are all delivered, and nothing is closed."""
    protocol, transport, _, handler = rated(MessageRate(1.0, 3))
    protocol.dataReceived(b"".join(client_frame(Opcode.TEXT, f"m{n}".encode()) for n in range(3)))
    assert texts(handler) == ["m0", "m1", "m2"]
    assert transport.value() == b"" and not transport.disconnecting


def test_the_message_over_the_rate_closes_with_1008_and_is_not_delivered():
    """One message past the burst is dropped, and the connection is failed with the core's 1008 close."""
    protocol, transport, _, handler = rated(MessageRate(1.0, 2))
    protocol.dataReceived(b"".join(client_frame(Opcode.TEXT, f"m{n}".encode()) for n in range(4)))
    assert texts(handler) == ["m0", "m1"]
    assert parse_frames(transport.value(), masked=False) == [
        (True, Opcode.CLOSE, close_payload(1008, b"message rate exceeded"))
    ]
    assert transport.disconnecting
    protocol.connectionLost(Failure(ConnectionLost()))
    assert handler.lost is not None and handler.lost.value.code == 1008


def test_binary_messages_count_too():
    """Binary messages take tokens from the same bucket as text ones."""
    protocol, transport, _, handler = rated(MessageRate(1.0, 1))
    protocol.dataReceived(client_frame(Opcode.BINARY, b"\x00") + client_frame(Opcode.BINARY, b"\x01"))
    assert [value for name, value in handler.events if name == "bytes"] == [b"\x00"]
    assert parse_frames(transport.value(), masked=False)[-1][2][:2] == (1008).to_bytes(2, "big")


def test_a_peer_keeping_to_the_rate_is_never_closed():
    """One message per 1 / rate seconds goes on for as long as it likes."""
    protocol, transport, clock, handler = rated(MessageRate(2.0, 1))
    for _ in range(50):
        protocol.dataReceived(client_frame(Opcode.TEXT, b"x"))
        clock.advance(0.5)
    assert len(texts(handler)) == 50 and not transport.disconnecting


def test_pings_are_not_counted():
    """Control frames are not messages: a ping burst does not close a rated connection."""
    protocol, transport, _, handler = rated(MessageRate(1.0, 1))
    protocol.dataReceived(b"".join(client_frame(Opcode.PING, b"p") for _ in range(5)))
    protocol.dataReceived(client_frame(Opcode.TEXT, b"hello"))
    assert texts(handler) == ["hello"] and not transport.disconnecting


def test_without_a_message_rate_nothing_is_limited():
    """Off by default: a thousand messages at once all arrive."""
    protocol, transport, _, handler = rated(None)
    protocol.dataReceived(b"".join(client_frame(Opcode.TEXT, b"x") for _ in range(1000)))
    assert len(texts(handler)) == 1000 and not transport.disconnecting


def test_the_gate_passes_on_what_it_does_not_limit():
    """Pongs, the close and the handler's own attributes reach the handler as without the gate."""
    handler = RecordingHandler()
    gate = MessageRateGate(handler, Connection(Side.SERVER, Limits()), MessageRate(1.0, 1), MemoryReactorClock())
    gate.pongReceived(b"p")
    gate.connectionLost(Failure(ConnectionLost()))
    assert [name for name, _ in handler.events] == ["pong", "connectionLost"]
    assert gate.events is handler.events
    assert "behind message_rate 1/s" in repr(gate)
