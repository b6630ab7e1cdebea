"""The Twisted adapter: WebSocketWireProtocol between a transport, the core and a handler.

Each test drives one server-side connection over a ``StringTransport`` with a
recording handler; time is a ``MemoryReactorClock``. Frames from the "client"
are built by hand (``tests.helpers``), so what is checked is the bytes on the
wire, as a peer would see them.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any

import pytest
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.interfaces import IPushProducer
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.logger import capturedLogs, formatEvent
from twisted.python.failure import Failure

from tests.adapter.recording import SECRET, HandlerBug, RecordingHandler, RecordingProducer
from tests.helpers import client_frame, close_payload, frame, parse_frames
from tests.wire import decode_frames
from wsdaemon.adapter.protocol import WebSocketWireProtocol
from wsdaemon.core import Connection, Limits, LocalProtocolError, Side
from wsdaemon.core.deflate import DeflateParams, PerMessageDeflate
from wsdaemon.core.errors import SHUTDOWN
from wsdaemon.core.frames import Opcode, SharedMessage

TEXT, BINARY, CLOSE, PING, PONG = Opcode.TEXT, Opcode.BINARY, Opcode.CLOSE, Opcode.PING, Opcode.PONG


@dataclass
class Wire:
    """One connection under test and everything around it."""

    protocol: WebSocketWireProtocol
    transport: StringTransport
    clock: MemoryReactorClock
    handler: Any

    def send_frame(self, opcode: int, payload: bytes = b"", **kwargs: Any) -> None:
        """The peer sends one masked frame."""
        self.protocol.dataReceived(client_frame(opcode, payload, **kwargs))

    def frames(self) -> list[tuple[bool, int, bytes]]:
        """Frames written since the last call, parsed as a client would (unmasked)."""
        data = self.transport.value()
        self.transport.clear()
        return parse_frames(data, masked=False)

    def lose(self, error: Exception | None = None) -> None:
        """TCP goes away (as the reactor reports it)."""
        self.protocol.connectionLost(Failure(error or ConnectionDone()))


def connect(handler: Any = None, **limit_changes: Any) -> Wire:
    """A connection after the 101: ``negotiationStarted`` and ``negotiationFinished`` ran."""
    clock = MemoryReactorClock()
    handler = handler if handler is not None else RecordingHandler()
    limits = Limits().replace(**limit_changes)
    protocol = WebSocketWireProtocol(handler, Connection(Side.SERVER, limits), clock, path="/test")
    transport = StringTransport()
    protocol.makeConnection(transport)
    protocol.finishNegotiation()
    return Wire(protocol, transport, clock, handler)


def close_frame(code: int, reason: bytes = b"") -> tuple[bool, int, bytes]:
    """A close frame as parse_frames reports it."""
    return (True, CLOSE, close_payload(code, reason))


# --- opening ---------------------------------------------------------------------


def test_tcp_read_size_and_send_chunk_come_from_the_limits():
    """On a Twisted TCP transport, bufferSize (read size, pause mark) and SEND_LIMIT follow the limits.

    Twisted's defaults (64 KiB reads, 128 KiB per send) cost a 1 MiB message
    sixteen reads and eight sends, each a trip through the reactor.
    """
    from twisted.internet import tcp

    class TCPLikeTransport(StringTransport):
        bufferSize = tcp.Connection.bufferSize
        SEND_LIMIT = tcp.Connection.SEND_LIMIT

    limits = Limits().replace(write_buffer_high_bytes=300_000, send_chunk_bytes=700_000)
    protocol = WebSocketWireProtocol(RecordingHandler(), Connection(Side.SERVER, limits), MemoryReactorClock())
    transport = TCPLikeTransport()
    protocol.makeConnection(transport)
    assert (transport.bufferSize, transport.SEND_LIMIT) == (300_000, 700_000)
    assert Limits().send_chunk_bytes == 512 * 1024 > tcp.Connection.SEND_LIMIT


def test_negotiation_started_gets_the_websocket_transport():
    """negotiationStarted receives the object the handler sends through, then negotiationFinished follows."""
    wire = connect()
    assert wire.handler.events[:2] == [("negotiationStarted", wire.protocol), ("negotiationFinished", None)]
    assert wire.handler.transport is wire.protocol


def test_transport_offers_the_twisted_websocket_transport_methods():
    """What negotiationStarted passes has every WebSocketTransport method of twisted.web.websocket."""
    wire = connect()
    for name in ("sendTextMessage", "sendBytesMessage", "loseConnection", "ping", "attachProducer", "detachProducer"):
        assert callable(getattr(wire.handler.transport, name)), name


def test_opening_writes_nothing():
    """A new connection writes no frame until the handler or the peer does something."""
    wire = connect()
    assert wire.transport.value() == b""


def test_handler_may_send_in_negotiation_finished():
    """A greeting sent from negotiationFinished goes out at once."""

    class Greeter(RecordingHandler):
        def negotiationFinished(self) -> None:
            self.transport.sendTextMessage("welcome")

    wire = connect(Greeter())
    assert wire.frames() == [(True, TEXT, b"welcome")]


# --- messages in --------------------------------------------------------------------


def test_text_message_reaches_the_handler_as_str():
    """A text frame arrives at textMessageReceived as a decoded str."""
    wire = connect()
    wire.send_frame(TEXT, "héllo ✓".encode())
    assert wire.handler.messages() == [("text", "héllo ✓")]


def test_binary_message_reaches_the_handler_as_bytes():
    """A binary frame arrives at bytesMessageReceived as bytes."""
    wire = connect()
    wire.send_frame(BINARY, b"\x00\xffdata")
    assert wire.handler.messages() == [("bytes", b"\x00\xffdata")]


def test_fragmented_message_is_delivered_once_whole():
    """A message in three fragments is delivered once, reassembled."""
    wire = connect()
    wire.send_frame(TEXT, b"one ", fin=False)
    wire.send_frame(Opcode.CONTINUATION, b"two ", fin=False)
    assert wire.handler.messages() == []
    wire.send_frame(Opcode.CONTINUATION, b"three")
    assert wire.handler.messages() == [("text", "one two three")]


def test_messages_in_one_read_are_delivered_in_order():
    """Several messages arriving in one TCP read reach the handler in order."""
    wire = connect()
    data = client_frame(TEXT, b"a") + client_frame(BINARY, b"b") + client_frame(TEXT, b"c")
    wire.protocol.dataReceived(data)
    assert wire.handler.messages() == [("text", "a"), ("bytes", b"b"), ("text", "c")]


def test_message_split_across_reads_is_delivered_when_complete():
    """A frame arriving one byte per read is delivered once, when its last byte arrives."""
    wire = connect()
    data = client_frame(TEXT, b"slow")
    for index in range(len(data)):
        assert wire.handler.messages() == []
        wire.protocol.dataReceived(data[index : index + 1])
    assert wire.handler.messages() == [("text", "slow")]


# --- messages out ---------------------------------------------------------------------


def test_send_text_message_writes_an_unmasked_text_frame():
    """sendTextMessage writes exactly one unmasked server text frame (RFC 6455 §5.1)."""
    wire = connect()
    wire.handler.transport.sendTextMessage("hello")
    assert wire.transport.value() == b"\x81\x05hello"


def test_send_bytes_message_writes_an_unmasked_binary_frame():
    """sendBytesMessage writes exactly one unmasked server binary frame."""
    wire = connect()
    wire.handler.transport.sendBytesMessage(b"\x01\x02")
    assert wire.transport.value() == b"\x82\x02\x01\x02"


def test_echo_from_the_handler_goes_back_to_the_peer():
    """A handler answering inside textMessageReceived has its answer written after the read."""
    wire = connect(RecordingHandler(echo=True))
    wire.send_frame(TEXT, b"ping?")
    wire.send_frame(BINARY, b"\x00")
    assert wire.frames() == [(True, TEXT, b"ping?"), (True, BINARY, b"\x00")]


def test_large_outgoing_message_is_fragmented():
    """A message bigger than fragment_outgoing_bytes goes out as several frames that reassemble to it."""
    wire = connect(fragment_outgoing_bytes=1000)
    wire.handler.transport.sendBytesMessage(b"x" * 2500)
    frames = wire.frames()
    assert [(fin, opcode) for fin, opcode, _ in frames] == [(False, BINARY), (False, 0), (True, 0)]
    assert b"".join(payload for _, _, payload in frames) == b"x" * 2500


def test_send_after_close_is_dropped_without_error():
    """Messages a handler sends after starting the close are silently dropped (nothing after the Close)."""
    wire = connect()
    wire.handler.transport.loseConnection()
    wire.frames()
    wire.handler.transport.sendTextMessage("too late")
    wire.handler.transport.sendBytesMessage(b"too late")
    wire.handler.transport.ping(b"too late")
    assert wire.transport.value() == b""


# --- shared messages ---------------------------------------------------------------------


def test_shared_message_keeps_its_place_among_the_handler_sends():
    """A shared message sent between two plain sends, inside dispatch, goes out between them."""

    class Relay(RecordingHandler):
        def textMessageReceived(self, message: str) -> None:
            transport: Any = self.transport
            transport.sendTextMessage("before")
            transport.sendSharedMessage(SharedMessage(TEXT, message.encode()))
            transport.sendTextMessage("after")

    wire = connect(Relay())
    wire.send_frame(TEXT, b"shared")
    assert wire.frames() == [(True, TEXT, b"before"), (True, TEXT, b"shared"), (True, TEXT, b"after")]
    assert wire.protocol.messages_out == 3


def test_shared_message_after_close_is_dropped_without_error():
    """Once our Close went out, a shared message is dropped like any other (nothing after the Close)."""
    wire = connect()
    wire.handler.transport.loseConnection()
    wire.frames()
    with capturedLogs() as events:
        wire.handler.transport.sendSharedMessage(SharedMessage(TEXT, b"too late"))
    assert wire.transport.value() == b"" and wire.protocol.messages_out == 0
    assert any(event.get("kind") == "shared" for event in events)


def test_compressing_connection_encodes_a_shared_message_itself():
    """On a permessage-deflate connection the shared message is compressed for it (RSV1) and inflates back."""
    clock = MemoryReactorClock()
    codec = PerMessageDeflate(DeflateParams())
    protocol = WebSocketWireProtocol(RecordingHandler(), Connection(Side.SERVER, Limits(), (codec,)), clock)
    transport = StringTransport()
    protocol.makeConnection(transport)
    protocol.finishNegotiation()
    text = b"one message for the whole channel " * 3
    protocol.sendSharedMessage(SharedMessage(TEXT, text))
    (sent,) = decode_frames(transport.value(), masked=False)
    assert (sent.fin, sent.rsv, sent.opcode) == (True, 0x40, TEXT)
    assert zlib.decompressobj(-15).decompress(sent.payload + b"\x00\x00\xff\xff") == text


# --- ping and pong ----------------------------------------------------------------------


def test_ping_is_answered_with_a_pong_by_the_core():
    """A peer's Ping gets a Pong with the same payload, without the handler doing anything (RFC 6455 §5.5.2)."""
    wire = connect()
    wire.send_frame(PING, b"are you there")
    assert wire.frames() == [(True, PONG, b"are you there")]
    assert wire.handler.messages() == []


def test_pong_reaches_pong_received():
    """A Pong from the peer is passed to pongReceived with its payload."""
    wire = connect()
    wire.send_frame(PONG, b"beat")
    assert ("pong", b"beat") in wire.handler.events


def test_handler_ping_writes_a_ping_frame():
    """transport.ping(payload) writes a Ping frame carrying the payload."""
    wire = connect()
    wire.handler.transport.ping(b"42")
    assert wire.frames() == [(True, PING, b"42")]


def test_handler_ping_over_125_bytes_is_refused():
    """A Ping payload over 125 bytes is the handler's mistake and raises LocalProtocolError."""
    wire = connect()
    with pytest.raises(LocalProtocolError):
        wire.handler.transport.ping(b"x" * 126)


# --- handler errors ------------------------------------------------------------------------


def test_handler_exception_closes_with_1011_without_details():
    """A handler that raises gets its connection closed with 1011; the exception text never goes on the wire."""
    wire = connect(RecordingHandler(raise_in="text"))
    with capturedLogs() as events:
        wire.send_frame(TEXT, b"boom")
    written = wire.transport.value()
    assert SECRET.encode() not in written
    assert b"HandlerBug" not in written and b"Traceback" not in written
    frames = parse_frames(written, masked=False)
    assert [opcode for _, opcode, _ in frames] == [CLOSE]
    assert frames[0][2][:2] == close_payload(1011)
    assert wire.transport.disconnecting
    failures = [event for event in events if "log_failure" in event]
    assert failures and failures[0]["log_failure"].check(HandlerBug)


def test_handler_exception_is_reported_to_its_connection_lost_as_1011():
    """After a handler error, the handler's connectionLost still runs and reports code 1011."""
    wire = connect(RecordingHandler(raise_in="bytes"))
    with capturedLogs():
        wire.send_frame(BINARY, b"boom")
    wire.lose()
    assert wire.handler.lost is not None
    assert wire.handler.lost.value.code == 1011


def test_handler_exception_affects_only_its_own_connection():
    """One handler raising closes its connection only; another connection keeps working."""
    broken = connect(RecordingHandler(raise_in="text"))
    healthy = connect(RecordingHandler(echo=True))
    with capturedLogs():
        broken.send_frame(TEXT, b"boom")
    healthy.send_frame(TEXT, b"still here")
    assert healthy.frames() == [(True, TEXT, b"still here")]
    assert not healthy.transport.disconnecting
    assert broken.transport.disconnecting


def test_exception_in_negotiation_started_closes_with_1011():
    """A handler failing in negotiationStarted gets a 1011 close instead of a crashed reactor."""
    clock = MemoryReactorClock()
    handler = RecordingHandler(raise_in="negotiationStarted")
    protocol = WebSocketWireProtocol(handler, Connection(Side.SERVER, Limits()), clock)
    transport = StringTransport()
    with capturedLogs():
        protocol.makeConnection(transport)
    assert parse_frames(transport.value(), masked=False) == [close_frame(1011, b"internal error")]
    assert transport.disconnecting


def test_exception_in_connection_lost_is_contained():
    """A handler raising in connectionLost is logged, not propagated into the reactor."""
    wire = connect(RecordingHandler(raise_in="connectionLost"))
    with capturedLogs() as events:
        wire.lose()
    assert any("log_failure" in event for event in events)


# --- closing ------------------------------------------------------------------------------------


def test_lose_connection_sends_a_close_frame_with_the_code_and_reason():
    """loseConnection(code, reason) writes one Close frame carrying them, and keeps TCP open for the answer."""
    wire = connect()
    wire.handler.transport.loseConnection(4000, "bye")
    assert wire.frames() == [close_frame(4000, b"bye")]
    assert not wire.transport.disconnecting


def test_lose_connection_defaults_to_1000():
    """loseConnection() with no code closes with 1000 (normal closure)."""
    wire = connect()
    wire.handler.transport.loseConnection()
    assert wire.frames() == [close_frame(1000)]


def test_lose_connection_twice_sends_one_close():
    """Calling loseConnection again while closing does nothing."""
    wire = connect()
    wire.handler.transport.loseConnection(1000)
    wire.handler.transport.loseConnection(1001)
    assert wire.frames() == [close_frame(1000)]


def test_close_timeout_aborts_a_peer_that_never_answers():
    """After our Close, a peer that does not answer within close_timeout_seconds has TCP aborted."""
    wire = connect(close_timeout_seconds=5.0)
    wire.handler.transport.loseConnection(1000)
    wire.clock.advance(4.9)
    assert not wire.transport.disconnected
    wire.clock.advance(0.1)
    assert wire.transport.disconnected  # StringTransport's flag for abortConnection


def test_close_timeout_then_connection_lost_reports_1006():
    """A close handshake cut short by the close timeout is reported to the handler as 1006, not clean."""
    wire = connect(close_timeout_seconds=5.0)
    wire.handler.transport.loseConnection(1000)
    wire.clock.advance(5)
    wire.lose(ConnectionLost())
    assert wire.handler.lost.value.code == 1006
    assert wire.handler.lost.check(ConnectionLost)


def test_peer_answer_to_our_close_ends_tcp_and_disarms_the_timeout():
    """When the peer answers our Close, the server closes TCP and no close timer is left once it is gone."""
    wire = connect()
    wire.handler.transport.loseConnection(1000)
    wire.frames()
    wire.send_frame(CLOSE, close_payload(1000))
    assert wire.transport.disconnecting
    assert wire.frames() == []  # the Close was already sent; it is not sent twice
    wire.lose()
    assert wire.clock.getDelayedCalls() == []
    assert wire.handler.lost.value.code == 1000


def test_peer_close_is_echoed_and_tcp_closed():
    """A Close from the peer is answered with the same code and the server closes TCP (RFC 6455 §5.5.1, §7.1.1)."""
    wire = connect()
    wire.send_frame(CLOSE, close_payload(1001, b"leaving"))
    assert wire.frames() == [close_frame(1001)]
    assert wire.transport.disconnecting


def test_peer_close_without_code_is_answered_with_1000():
    """An empty Close payload (no status code) is answered with 1000."""
    wire = connect()
    wire.send_frame(CLOSE)
    assert wire.frames() == [close_frame(1000)]


def test_clean_close_reports_code_and_reason_to_connection_lost():
    """After a completed close handshake, connectionLost gets a ConnectionDone whose value has .code and .reason."""
    wire = connect()
    wire.send_frame(CLOSE, close_payload(1000, b"done"))
    wire.lose()
    reason = wire.handler.lost
    assert reason.check(ConnectionDone)
    assert (reason.value.code, reason.value.reason) == (1000, "done")


def test_peer_vanishing_is_reported_as_1006():
    """A TCP drop without any Close is reported as a ConnectionLost with code 1006 (RFC 6455 §7.1.5)."""
    wire = connect()
    wire.lose(ConnectionLost())
    reason = wire.handler.lost
    assert reason.check(ConnectionLost)
    assert reason.value.code == 1006


def test_connection_lost_is_reported_once_and_last():
    """connectionLost reaches the handler exactly once, after everything else."""
    wire = connect(RecordingHandler(echo=True))
    wire.send_frame(TEXT, b"x")
    wire.send_frame(CLOSE, close_payload(1000))
    wire.lose()
    names = [name for name, _ in wire.handler.events]
    assert names.count("connectionLost") == 1
    assert names[-1] == "connectionLost"


def test_connection_lost_cancels_every_timer():
    """When TCP is gone no idle or close timer is left on the reactor."""
    wire = connect()
    wire.handler.transport.loseConnection(1000)
    assert wire.clock.getDelayedCalls() != []
    wire.lose(ConnectionLost())
    assert wire.clock.getDelayedCalls() == []


def test_connection_lost_logs_one_summary_line():
    """Each closed connection logs one summary with its path, close code and byte counts (DESIGN §4)."""
    wire = connect(RecordingHandler(echo=True))
    wire.send_frame(TEXT, b"hello")
    wire.send_frame(CLOSE, close_payload(1000))
    with capturedLogs() as events:
        wire.lose()
    summaries = [event for event in events if str(event.get("summary", "")).startswith("websocket closed")]
    assert len(summaries) == 1
    summary = summaries[0]
    assert formatEvent(summary).startswith("websocket closed peer=")
    assert "path=/test" in formatEvent(summary) and "code=1000" in formatEvent(summary)
    assert (summary["path"], summary["code"], summary["messages_in"], summary["messages_out"]) == ("/test", 1000, 1, 1)
    assert summary["bytes_out"] == len(b"\x81\x05hello") + 4


# --- protocol errors -----------------------------------------------------------------------


def test_earlier_echoes_are_written_before_the_close_caused_by_a_later_bad_frame():
    """Messages before a bad frame in the same read are echoed first, then the Close for the bad frame."""
    wire = connect(RecordingHandler(echo=True))
    data = client_frame(TEXT, b"one") + client_frame(TEXT, b"two") + frame(TEXT, b"unmasked")
    wire.protocol.dataReceived(data)
    frames = wire.frames()
    assert frames[:2] == [(True, TEXT, b"one"), (True, TEXT, b"two")]
    assert [opcode for _, opcode, _ in frames[2:]] == [CLOSE]
    assert frames[2][2][:2] == close_payload(1002)
    assert wire.transport.disconnecting


def test_invalid_utf8_closes_with_1007_and_is_reported_as_lost():
    """Invalid UTF-8 in a text message closes with 1007; the handler hears a failed connection with 1007."""
    wire = connect()
    wire.send_frame(TEXT, b"\xff")
    frames = wire.frames()
    assert frames[0][2][:2] == close_payload(1007)
    wire.lose()
    assert wire.handler.lost.check(ConnectionLost)
    assert wire.handler.lost.value.code == 1007


def test_oversized_message_closes_with_1009_before_buffering_it():
    """A frame declaring more than max_message_bytes is refused with 1009 from its header alone."""
    wire = connect(max_message_bytes=1000)
    header_only = client_frame(BINARY, b"x" * 2000)[:14]
    wire.protocol.dataReceived(header_only)
    assert wire.frames()[0][2][:2] == close_payload(1009)
    assert wire.handler.messages() == []


def test_failed_connection_that_does_not_close_is_aborted_after_the_close_timeout():
    """After a protocol error the server closes TCP; if that does not finish within close_timeout_seconds it aborts."""
    wire = connect(close_timeout_seconds=5.0)
    wire.protocol.dataReceived(frame(TEXT, b"unmasked"))
    assert wire.transport.disconnecting and not wire.transport.disconnected
    wire.clock.advance(5)
    assert wire.transport.disconnected


# --- idle timeout --------------------------------------------------------------------------


def test_idle_connection_is_closed_with_1001():
    """No traffic for idle_timeout_seconds closes the connection with 1001 (going away)."""
    wire = connect(idle_timeout_seconds=60.0)
    wire.clock.advance(59)
    assert wire.transport.value() == b""
    wire.clock.advance(1)
    assert wire.frames() == [close_frame(1001, b"idle timeout")]


def test_incoming_traffic_postpones_the_idle_timeout():
    """A message from the peer before the idle timeout keeps the connection open past it."""
    wire = connect(idle_timeout_seconds=60.0)
    wire.clock.advance(59)
    wire.send_frame(TEXT, b"still here")
    wire.clock.advance(2)
    assert wire.frames() == []
    wire.clock.advance(120)  # then silence for longer than a whole period
    assert [opcode for _, opcode, _ in wire.frames()] == [CLOSE]


def test_outgoing_traffic_postpones_the_idle_timeout():
    """A message from the handler counts as traffic too (idle means no traffic either way)."""
    wire = connect(idle_timeout_seconds=60.0)
    wire.clock.advance(59)
    wire.handler.transport.sendTextMessage("server push")
    wire.frames()
    wire.clock.advance(2)
    assert wire.frames() == []


def test_close_for_shutdown_sends_1001_and_reads_the_answer():
    """close_for(SHUTDOWN) (the drain) sends 1001 "server shutting down" and resumes reading a paused peer."""
    wire = connect()
    wire.handler.transport.pauseReceiving()
    wire.protocol.close_for(SHUTDOWN)
    assert wire.frames() == [close_frame(1001, b"server shutting down")]
    assert wire.transport.producerState == "producing"  # the peer's Close must be read
    wire.protocol.close_for(SHUTDOWN)
    assert wire.frames() == []


def test_idle_close_that_is_never_answered_is_aborted():
    """An idle close the peer never answers is followed by the close timeout and an abort."""
    wire = connect(idle_timeout_seconds=60.0, close_timeout_seconds=5.0)
    wire.clock.advance(60)
    wire.clock.advance(5)
    assert wire.transport.disconnected


# --- backpressure --------------------------------------------------------------------------


def test_protocol_registers_as_a_streaming_producer():
    """The wire protocol registers with its transport as a push producer, so TCP can pause it."""
    wire = connect()
    assert wire.transport.producer is wire.protocol
    assert wire.transport.streaming is True
    assert IPushProducer.providedBy(wire.protocol)


def test_pause_producing_stops_reading_and_pauses_the_handler_producer():
    """When the transport's buffer is full, reading stops and the handler's producer is paused."""
    wire = connect()
    producer = RecordingProducer()
    wire.handler.transport.attachProducer(producer)
    wire.protocol.pauseProducing()
    assert wire.transport.producerState == "paused"
    assert producer.state == "paused"


def test_resume_producing_resumes_reading_and_the_handler_producer():
    """When the buffer drains, reading resumes and the handler's producer is resumed."""
    wire = connect()
    producer = RecordingProducer()
    wire.handler.transport.attachProducer(producer)
    wire.protocol.pauseProducing()
    wire.protocol.resumeProducing()
    assert wire.transport.producerState == "producing"
    assert producer.state == "producing"


def test_producer_attached_while_paused_is_paused_at_once():
    """A producer attached while the peer is already slow starts out paused."""
    wire = connect()
    wire.protocol.pauseProducing()
    producer = RecordingProducer()
    wire.handler.transport.attachProducer(producer)
    assert producer.state == "paused"


def test_detached_producer_is_no_longer_paused():
    """After detachProducer, pausing the connection leaves that producer alone."""
    wire = connect()
    producer = RecordingProducer()
    wire.handler.transport.attachProducer(producer)
    wire.handler.transport.detachProducer()
    wire.protocol.pauseProducing()
    assert producer.state == "producing"


def test_stop_producing_stops_the_handler_producer():
    """When the transport stops the connection's production, the handler's producer is stopped too."""
    wire = connect()
    producer = RecordingProducer()
    wire.handler.transport.attachProducer(producer)
    wire.protocol.stopProducing()
    assert producer.state == "stopped"


def test_peer_that_does_not_read_is_closed_with_1008_and_memory_stays_bounded():
    """A handler that keeps sending to a peer that stops reading gets the peer closed with 1008; writes stop."""
    wire = connect(write_buffer_high_bytes=1024, write_buffer_max_bytes=8192)
    wire.protocol.pauseProducing()  # what TCP does when its buffer passes write_buffer_high_bytes
    for _ in range(1000):  # ~100 KB offered, far past the cap
        wire.handler.transport.sendBytesMessage(b"x" * 100)
    written = wire.transport.value()
    assert len(written) <= 8192 + 2 * 102 + 4 + 64
    frames = parse_frames(written, masked=False)
    assert frames[-1] == close_frame(1008, b"peer is not reading")
    assert wire.transport.disconnecting


def test_one_large_message_to_a_reading_peer_is_not_a_policy_violation():
    """A single message larger than write_buffer_max_bytes, sent while the peer keeps up, is just sent."""
    wire = connect(write_buffer_high_bytes=1024, write_buffer_max_bytes=4096)
    wire.handler.transport.sendBytesMessage(b"x" * 20000)
    assert wire.frames() == [(True, BINARY, b"x" * 20000)]
    assert not wire.transport.disconnecting


def test_peer_that_resumes_reading_is_not_closed():
    """Bytes counted while paused are forgotten once the buffer drains; a peer that catches up stays open."""
    wire = connect(write_buffer_high_bytes=1024, write_buffer_max_bytes=4096)
    for _ in range(5):
        wire.protocol.pauseProducing()
        wire.handler.transport.sendBytesMessage(b"x" * 3000)
        wire.protocol.resumeProducing()
    assert not wire.transport.disconnecting
    assert all(opcode == BINARY for _, opcode, _ in wire.frames())


def test_slow_peer_closed_with_1008_is_reported_to_the_handler_as_lost():
    """A connection the server had to fail (slow peer, 1008) is reported as lost, not as a clean close."""
    wire = connect(write_buffer_high_bytes=1024, write_buffer_max_bytes=4096)
    wire.protocol.pauseProducing()
    for _ in range(100):
        wire.handler.transport.sendBytesMessage(b"x" * 100)
    wire.lose()
    assert wire.handler.lost.value.code == 1008
    assert wire.handler.lost.check(ConnectionLost), "failed with 1008, yet reported as a clean ConnectionDone"
