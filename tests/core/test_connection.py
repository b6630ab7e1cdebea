"""Tests for wsdaemon.core.connection: the sans-I/O state machine (RFC 6455 §5-§7).

Every stream goes through :func:`tests.helpers.feed`, which runs it whole and
one byte at a time and checks both agree.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import pairwise
from typing import NamedTuple

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers import (
    client_frame,
    close_payload,
    feed,
    feed_frames,
    frame,
    output_frames,
    parse_frames,
    server_frame,
)
from wsdaemon.core.close import CloseCode
from wsdaemon.core.connection import EOF, Connection
from wsdaemon.core.errors import (
    IDLE_TIMEOUT,
    SHUTDOWN,
    FailReason,
    InternalError,
    KeepaliveTimeout,
    LocalClose,
    LocalProtocolError,
    MessageTooBig,
    SlowConsumer,
)
from wsdaemon.core.events import BytesMessage, CloseReceived, ConnectionFailed, Event, Ping, Pong, TextMessage
from wsdaemon.core.frames import Opcode, SharedMessage
from wsdaemon.core.limits import Limits
from wsdaemon.core.states import TRANSITIONS, Input, Side, State

TEXT, BINARY, CONT = Opcode.TEXT, Opcode.BINARY, Opcode.CONTINUATION
CLOSE, PING, PONG = Opcode.CLOSE, Opcode.PING, Opcode.PONG

SMALL = Limits(max_message_bytes=1000, max_frame_bytes=500, max_fragments=4, fragment_outgoing_bytes=200)


def close_frame(code: int | None = None, reason: bytes = b"") -> bytes:
    """A masked client Close frame; ``None`` means an empty payload."""
    return client_frame(CLOSE, b"" if code is None else close_payload(code, reason))


def failed(code: int, events: Sequence[object], out: list[tuple[bool, int, bytes]], eof: bool) -> None:
    """The connection failed with ``code``: a Close with that code went out, then EOF, and the event is last."""
    assert isinstance(events[-1], ConnectionFailed) and events[-1].code == code
    assert out[-1][1] == CLOSE and int.from_bytes(out[-1][2][:2], "big") == code
    assert eof


def taken(conn: Connection) -> tuple[list[Event], list[tuple[bool, int, bytes]], bool]:
    """Events, output frames and the EOF flag queued by ``conn`` since the last call."""
    events = list(conn.events_received())
    frames, eof = output_frames(conn.data_to_send(), conn.side)
    return events, frames, eof


class TestMessages:
    """RFC 6455 §5.6: data frames carry text and binary messages."""

    def test_text_message(self) -> None:
        """A masked text frame becomes a TextMessage and nothing is written back."""
        events, out, eof, conn = feed_frames(client_frame(TEXT, "héllo".encode()))
        assert events == [TextMessage("héllo")] and out == [] and not eof
        assert conn.state is State.OPEN and not conn.close_expected()

    def test_binary_message(self) -> None:
        """A masked binary frame becomes a BytesMessage."""
        events, *_ = feed_frames(client_frame(BINARY, b"\x00\xff\x10"))
        assert events == [BytesMessage(b"\x00\xff\x10")]

    @pytest.mark.parametrize(("opcode", "event"), [(TEXT, TextMessage("")), (BINARY, BytesMessage(b""))])
    def test_empty_message(self, opcode: Opcode, event: object) -> None:
        """An empty data frame is an empty message."""
        events, *_ = feed_frames(client_frame(opcode))
        assert events == [event]

    def test_several_messages_in_one_read(self) -> None:
        """Messages arriving together come out in order."""
        events, *_ = feed_frames(client_frame(TEXT, b"a"), client_frame(BINARY, b"b"), client_frame(TEXT, b"c"))
        assert events == [TextMessage("a"), BytesMessage(b"b"), TextMessage("c")]

    def test_echo(self) -> None:
        """What a handler sends back is framed unmasked by the server."""
        events, _, conn = feed(client_frame(TEXT, b"echo me"))
        assert isinstance(events[0], TextMessage)
        conn.send_text(events[0].data)
        conn.send_binary(b"\x01\x02")
        assert b"".join(conn.data_to_send()) == server_frame(TEXT, b"echo me") + server_frame(BINARY, b"\x01\x02")

    def test_large_message_in_one_frame(self) -> None:
        """A frame with a 64-bit length is delivered whole."""
        body = bytes(range(256)) * 300
        events, *_ = feed_frames(
            client_frame(BINARY, body), limits=Limits(max_frame_bytes=2**17, max_message_bytes=2**17)
        )
        assert events == [BytesMessage(body)]


class TestFragmentation:
    """RFC 6455 §5.4: fragmented messages, with control frames in between."""

    def test_fragmented_text_is_reassembled(self) -> None:
        """Text split over frames (even inside a character) is one message."""
        data = "κόσμε".encode()
        events, *_ = feed_frames(
            client_frame(TEXT, data[:3], fin=False),
            client_frame(CONT, data[3:7], fin=False),
            client_frame(CONT, data[7:]),
        )
        assert events == [TextMessage("κόσμε")]

    def test_fragmented_binary_is_reassembled(self) -> None:
        """Binary split over frames, empty ones included, is one message."""
        events, *_ = feed_frames(
            client_frame(BINARY, b"ab", fin=False), client_frame(CONT, b"", fin=False), client_frame(CONT, b"cd")
        )
        assert events == [BytesMessage(b"abcd")]

    def test_ping_mid_message_is_answered_at_once(self) -> None:
        """A Ping between fragments is answered with a Pong of the same payload before the message ends."""
        conn = Connection(Side.SERVER)
        conn.receive_data(client_frame(TEXT, b"frag", fin=False) + client_frame(PING, b"are you there"))
        events, out, eof = taken(conn)
        assert events == [Ping(b"are you there")]
        assert out == [(True, PONG, b"are you there")] and not eof
        conn.receive_data(client_frame(CONT, b"ment"))
        assert conn.events_received() == [TextMessage("fragment")]

    def test_control_frames_between_fragments(self) -> None:
        """Pings and Pongs between fragments are reported in order, around the message."""
        events, out, eof, _ = feed_frames(
            client_frame(BINARY, b"1", fin=False),
            client_frame(PING, b"p"),
            client_frame(CONT, b"2", fin=False),
            client_frame(PONG, b"q"),
            client_frame(CONT, b"3"),
        )
        assert events == [Ping(b"p"), Pong(b"q"), BytesMessage(b"123")]
        assert out == [(True, PONG, b"p")] and not eof

    def test_close_mid_message_drops_the_partial_message(self) -> None:
        """A Close between fragments ends the connection; the half message is never delivered."""
        events, out, eof, _ = feed_frames(client_frame(BINARY, b"1", fin=False), close_frame(1000))
        assert events == [CloseReceived(1000, "")] and out == [(True, CLOSE, close_payload(1000))] and eof

    def test_continuation_without_start_is_1002(self) -> None:
        """A continuation frame with no message to continue fails with 1002."""
        failed(1002, *feed_frames(client_frame(CONT, b"x"))[:3])

    @pytest.mark.parametrize("opcode", [TEXT, BINARY])
    def test_new_data_frame_inside_fragmented_message_is_1002(self, opcode: Opcode) -> None:
        """A new text or binary frame before the previous message ends fails with 1002."""
        failed(1002, *feed_frames(client_frame(TEXT, b"a", fin=False), client_frame(opcode, b"b"))[:3])

    def test_continuation_error_is_found_from_the_header(self) -> None:
        """An orphan continuation fails as soon as its header arrives, before its payload."""
        conn = Connection(Side.SERVER)
        conn.receive_data(client_frame(CONT, b"xyz")[:6])
        assert [type(e) for e in conn.events_received()] == [ConnectionFailed]

    def test_outgoing_message_is_fragmented(self) -> None:
        """A message over fragment_outgoing_bytes goes out as frames of that size."""
        conn = Connection(Side.SERVER, SMALL)
        conn.send_binary(b"x" * 450)
        frames = parse_frames(b"".join(conn.data_to_send()), masked=False)
        assert [(fin, op, len(p)) for fin, op, p in frames] == [
            (False, BINARY, 200),
            (False, CONT, 200),
            (True, CONT, 50),
        ]

    def test_outgoing_message_of_exactly_the_fragment_size_is_one_frame(self) -> None:
        """A message of exactly fragment_outgoing_bytes is not split."""
        conn = Connection(Side.SERVER, SMALL)
        conn.send_text("y" * 200)
        assert parse_frames(b"".join(conn.data_to_send()), masked=False) == [(True, TEXT, b"y" * 200)]

    def test_fragmented_outgoing_text_reassembles_on_a_client(self) -> None:
        """A split text message, cut inside a character, reads back whole on the other side."""
        server = Connection(Side.SERVER, SMALL)
        text = "€" * 150  # 450 bytes, cut at 200 and 400: inside characters
        server.send_text(text)
        events, *_ = feed_frames(b"".join(server.data_to_send()), side=Side.CLIENT, limits=SMALL)
        assert events == [TextMessage(text)]


class TestUTF8:
    """RFC 6455 §8.1: text must be valid UTF-8, checked as it arrives."""

    def test_invalid_utf8_is_1007(self) -> None:
        """A text frame with invalid UTF-8 fails with 1007."""
        failed(1007, *feed_frames(client_frame(TEXT, b"abc\xff"))[:3])

    def test_invalid_utf8_across_fragments_is_1007(self) -> None:
        """Invalid UTF-8 in a later fragment fails with 1007."""
        failed(1007, *feed_frames(client_frame(TEXT, b"ok", fin=False), client_frame(CONT, b"\xc0\xaf"))[:3])

    def test_message_ending_mid_character_is_1007(self) -> None:
        """A text message that ends inside a character fails with 1007."""
        events, out, eof, _ = feed_frames(client_frame(TEXT, b"ok\xe2\x82", fin=False), client_frame(CONT, b""))
        failed(1007, events, out, eof)

    def test_invalid_utf8_is_detected_in_the_chunk_where_it_arrives(self) -> None:
        """The failure comes with the bad bytes, before the rest of the frame arrives."""
        data = client_frame(TEXT, "κόσμε".encode() + b"\xf4\x90\x80\x80" + b"x" * 100)
        conn = Connection(Side.SERVER)
        conn.receive_data(data[: 6 + 10])  # header, mask and "κόσμε"
        assert conn.events_received() == []
        conn.receive_data(data[16:18])  # F4 90: no character starts like this
        events, out, eof = taken(conn)
        failed(1007, events, out, eof)

    def test_invalid_utf8_in_first_fragment_fails_before_the_next(self) -> None:
        """Autobahn 6.4.1: the fragment with the bad bytes fails; the next is never awaited."""
        conn = Connection(Side.SERVER)
        conn.receive_data(client_frame(TEXT, "κόσμε".encode(), fin=False))
        conn.receive_data(client_frame(CONT, b"\xf4\x90\x80\x80", fin=False))
        failed(1007, *taken(conn))

    def test_invalid_utf8_close_reason_is_1007(self) -> None:
        """A Close whose reason is not UTF-8 fails with 1007."""
        failed(1007, *feed_frames(close_frame(1000, b"\xff"))[:3])

    def test_binary_is_not_checked(self) -> None:
        """Binary messages may hold any bytes."""
        events, *_ = feed_frames(client_frame(BINARY, b"\xff\xc0\xaf"))
        assert events == [BytesMessage(b"\xff\xc0\xaf")]


class TestLimits:
    """House rule 6: sizes are checked on declared lengths, before buffering."""

    def test_frame_over_max_frame_bytes_is_1009(self) -> None:
        """A frame declaring more than max_frame_bytes fails with 1009."""
        failed(1009, *feed_frames(client_frame(BINARY, b"x" * 501), limits=SMALL)[:3])

    def test_message_over_max_message_bytes_is_1009(self) -> None:
        """Fragments adding up to more than max_message_bytes fail with 1009."""
        frames = [
            client_frame(BINARY, b"x" * 400, fin=False),
            client_frame(CONT, b"x" * 400, fin=False),
            client_frame(CONT, b"x" * 201),
        ]
        failed(1009, *feed_frames(*frames, limits=SMALL)[:3])

    def test_message_at_max_message_bytes_is_accepted(self) -> None:
        """Fragments adding up to exactly max_message_bytes are fine."""
        frames = [client_frame(BINARY, b"x" * 500, fin=False), client_frame(CONT, b"y" * 500)]
        events, *_ = feed_frames(*frames, limits=SMALL)
        assert events == [BytesMessage(b"x" * 500 + b"y" * 500)]

    def test_message_size_is_decided_from_the_declared_length(self) -> None:
        """The 1009 comes from the header of the frame that overflows, before its payload."""
        conn = Connection(Side.SERVER, SMALL)
        conn.receive_data(client_frame(BINARY, b"x" * 500, fin=False))
        conn.receive_data(client_frame(CONT, b"x" * 501)[:8])  # header and mask only
        failed(1009, *taken(conn))
        assert isinstance(conn.failure, MessageTooBig)

    def test_single_frame_over_max_message_bytes_fails_from_its_header(self) -> None:
        """A frame under max_frame_bytes but over max_message_bytes fails from its header alone."""
        limits = Limits(max_message_bytes=200, max_frame_bytes=1000)
        conn = Connection(Side.SERVER, limits)
        conn.receive_data(client_frame(TEXT, b"x" * 201)[:8])
        failed(1009, *taken(conn))

    def test_too_many_fragments_is_1009(self) -> None:
        """More than max_fragments frames in one message (even empty ones) fail with 1009."""
        frames = [client_frame(BINARY, b"", fin=False)] + [client_frame(CONT, b"", fin=False)] * 4
        failed(1009, *feed_frames(*frames, limits=SMALL)[:3])

    def test_max_fragments_is_allowed(self) -> None:
        """A message in exactly max_fragments frames is fine."""
        frames = (
            [client_frame(BINARY, b"a", fin=False)]
            + [client_frame(CONT, b"b", fin=False)] * 2
            + [client_frame(CONT, b"c")]
        )
        events, *_ = feed_frames(*frames, limits=SMALL)
        assert events == [BytesMessage(b"abbc")]

    def test_fragment_count_restarts_per_message(self) -> None:
        """The fragment limit is per message, not per connection."""
        message = [client_frame(BINARY, b"a", fin=False), client_frame(CONT, b"b", fin=False), client_frame(CONT, b"c")]
        events, *_ = feed_frames(*(message * 3), limits=SMALL)
        assert events == [BytesMessage(b"abc")] * 3


class TestFramingErrors:
    """RFC 6455 §5.1-§5.5: framing errors fail the connection with 1002."""

    @pytest.mark.parametrize(
        "data",
        [
            server_frame(TEXT, b"unmasked"),
            client_frame(0x3, b""),
            client_frame(TEXT, b"", rsv=0x40),
            client_frame(PING, b"", fin=False),
            client_frame(PING, b"p" * 126),
            bytes([0x82, 0xFF]) + (2**63 + 1).to_bytes(8, "big") + b"MASK",
        ],
        ids=["unmasked", "reserved-opcode", "rsv1", "fragmented-ping", "long-ping", "64-bit-high-bit"],
    )
    def test_framing_error_is_1002(self, data: bytes) -> None:
        """Each framing error queues Close 1002, EOF and a ConnectionFailed event."""
        events, out, eof, conn = feed_frames(data)
        failed(1002, events, out, eof)
        assert conn.state is State.CLOSED and conn.close_code == 1002 and conn.failure is not None

    def test_masked_frame_to_client_is_1002(self) -> None:
        """A client fails a masked frame from the server with 1002."""
        events, out, eof, _ = feed_frames(client_frame(TEXT, b"x"), side=Side.CLIENT)
        failed(1002, events, out, eof)

    def test_failure_reason_is_our_own_words(self) -> None:
        """The close reason sent on failure is the error message we wrote."""
        events, *_ = feed_frames(client_frame(0x3, b""))
        assert events == [ConnectionFailed(1002, "reserved opcode 0x3")]


class TestEventOrder:
    """Events come out one at a time, so answers keep the peer's order."""

    def test_receive_data_only_buffers(self) -> None:
        """Nothing is parsed or answered until the events are asked for."""
        conn = Connection(Side.SERVER)
        conn.receive_data(client_frame(PING, b"p"))
        assert conn.data_to_send() == [] and conn.state is State.OPEN
        assert conn.events_received() == [Ping(b"p")]
        assert b"".join(conn.data_to_send()) == server_frame(PONG, b"p")

    def test_next_event_returns_one_event_at_a_time(self) -> None:
        """next_event parses only up to the next event; None means more bytes are needed."""
        conn = Connection(Side.SERVER)
        conn.receive_data(client_frame(TEXT, b"a") + client_frame(PING, b"p") + client_frame(TEXT, b"b")[:3])
        assert conn.next_event() == TextMessage("a")
        assert conn.data_to_send() == []  # the Ping is not parsed yet
        assert conn.next_event() == Ping(b"p")
        assert conn.next_event() is None
        conn.receive_data(client_frame(TEXT, b"b")[3:])
        assert conn.next_event() == TextMessage("b")
        assert conn.next_event() is None

    def test_answers_stay_in_order_before_a_later_violation(self) -> None:
        """An echo of a good message goes out before the Close caused by a later bad frame."""
        conn = Connection(Side.SERVER)
        conn.receive_data(client_frame(TEXT, b"first") + client_frame(0x3))
        event = conn.next_event()
        assert isinstance(event, TextMessage) and event.data == "first"
        conn.send_text(event.data)
        assert conn.next_event() == ConnectionFailed(1002, "reserved opcode 0x3")
        assert conn.next_event() is None
        out, eof = output_frames(conn.data_to_send(), Side.SERVER)
        assert out == [(True, TEXT, b"first"), (True, CLOSE, close_payload(1002, b"reserved opcode 0x3"))] and eof


class TestPingPong:
    """RFC 6455 §5.5.2-§5.5.3."""

    def test_ping_is_answered_with_same_payload(self) -> None:
        """A Ping gets a Pong with the same payload and is reported."""
        events, out, eof, _ = feed_frames(client_frame(PING, b"\x00hello"))
        assert events == [Ping(b"\x00hello")] and out == [(True, PONG, b"\x00hello")] and not eof

    def test_pong_is_reported_and_not_answered(self) -> None:
        """An unsolicited Pong is reported and needs no answer."""
        events, out, _, _ = feed_frames(client_frame(PONG, b"beat"))
        assert events == [Pong(b"beat")] and out == []

    def test_send_ping_and_pong(self) -> None:
        """send_ping and send_pong queue control frames."""
        conn = Connection(Side.SERVER)
        conn.send_ping(b"1")
        conn.send_pong(b"2")
        assert b"".join(conn.data_to_send()) == server_frame(PING, b"1") + server_frame(PONG, b"2")

    @pytest.mark.parametrize("method", ["send_ping", "send_pong"])
    def test_control_payload_over_125_bytes_is_a_local_error(self, method: str) -> None:
        """Our caller may not send a control payload over 125 bytes."""
        with pytest.raises(LocalProtocolError):
            getattr(Connection(Side.SERVER), method)(b"p" * 126)

    def test_ping_while_closing_is_reported_but_not_answered(self) -> None:
        """After we sent a Close, a Ping is reported but no Pong follows it."""
        conn = Connection(Side.SERVER)
        conn.send_close()
        conn.data_to_send()
        conn.receive_data(client_frame(PING, b"late"))
        assert conn.events_received() == [Ping(b"late")] and conn.data_to_send() == []


class TestClosingHandshake:
    """RFC 6455 §7: the closing handshake."""

    def test_peer_close_is_echoed_with_the_same_code(self) -> None:
        """A Close from the peer gets a Close with its code back, then the server closes TCP."""
        events, out, eof, conn = feed_frames(close_frame(1001, b"going"))
        assert events == [CloseReceived(1001, "going")]
        assert out == [(True, CLOSE, close_payload(1001))] and eof
        assert conn.state is State.CLOSED and (conn.close_code, conn.close_reason) == (1001, "going")
        assert conn.close_expected()

    def test_server_output_ends_with_eof(self) -> None:
        """After echoing a Close, the very last output item is EOF (close TCP)."""
        _, output, _ = feed(close_frame(1000))
        assert output[-1] == EOF and output.count(EOF) == 1

    def test_empty_close_is_echoed_as_1000(self) -> None:
        """A Close with no code reports 1005 and is answered with 1000."""
        events, out, eof, conn = feed_frames(close_frame())
        assert events == [CloseReceived(1005, "")]
        assert out == [(True, CLOSE, close_payload(1000))] and eof
        assert conn.close_code == CloseCode.NO_STATUS_RCVD

    @pytest.mark.parametrize("code", [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000])
    def test_invalid_close_code_is_1002(self, code: int) -> None:
        """A Close carrying a code not allowed on the wire fails with 1002."""
        failed(1002, *feed_frames(close_frame(code))[:3])

    def test_one_byte_close_is_1002(self) -> None:
        """A one-byte Close payload fails with 1002."""
        failed(1002, *feed_frames(client_frame(CLOSE, b"\x03"))[:3])

    def test_our_close_then_peer_close(self) -> None:
        """send_close moves to CLOSING; the peer's Close then moves to CLOSED and the server closes TCP."""
        conn = Connection(Side.SERVER)
        conn.send_close(4000, "bye")
        assert conn.state is State.CLOSING and conn.close_expected()
        assert b"".join(conn.data_to_send()) == server_frame(CLOSE, close_payload(4000, b"bye"))
        conn.receive_data(close_frame(4000, b"bye"))
        events, out, eof = taken(conn)
        assert events == [CloseReceived(4000, "bye")] and out == [] and eof
        assert conn.close_code == 4000
        assert conn.state is State.CLOSED  # type: ignore[comparison-overlap]  # mypy narrowed it to CLOSING

    def test_close_code_is_the_one_received(self) -> None:
        """RFC 6455 §7.1.5: after our Close, the connection's close code is the peer's answer."""
        conn = Connection(Side.SERVER)
        conn.send_close(4000, "ours")
        conn.receive_data(close_frame(1000, b"theirs"))
        conn.events_received()
        assert (conn.close_code, conn.close_reason) == (1000, "theirs")

    def test_messages_still_arrive_while_closing(self) -> None:
        """RFC 6455 §1.4: data sent before the peer saw our Close is still delivered."""
        conn = Connection(Side.SERVER)
        conn.send_close()
        conn.receive_data(client_frame(TEXT, b"late"))
        assert conn.events_received() == [TextMessage("late")] and conn.state is State.CLOSING

    def test_protocol_error_while_closing_closes_tcp_without_a_second_close(self) -> None:
        """A bad frame after our Close fails the connection without another Close frame."""
        conn = Connection(Side.SERVER)
        conn.send_close()
        conn.data_to_send()
        conn.receive_data(client_frame(0x3))
        assert conn.events_received() == [ConnectionFailed(1002, "reserved opcode 0x3")]
        assert conn.data_to_send() == [EOF] and conn.state is State.CLOSED

    def test_long_close_reason_is_truncated(self) -> None:
        """A close reason over 123 bytes is cut so the frame stays legal."""
        conn = Connection(Side.SERVER)
        conn.send_close(1000, "é" * 100)
        [(_, _, payload)] = parse_frames(b"".join(conn.data_to_send()), masked=False)
        assert len(payload) <= 125 and payload[2:].decode() == "é" * 61
        assert conn.close_reason == "é" * 61  # what the log and the handler report is what was sent

    def test_long_failure_reason_is_recorded_as_sent(self) -> None:
        """fail() with a long reason records and reports the cut reason that went on the wire."""
        conn = Connection(Side.SERVER)
        conn.fail(1011, "x" * 200)
        [(_, _, payload)] = parse_frames(b"".join(c for c in conn.data_to_send() if c), masked=False)
        assert conn.close_reason == payload[2:].decode() == "x" * 123
        assert conn.events_received() == [ConnectionFailed(1011, "x" * 123)]

    def test_data_after_closed_is_ignored(self) -> None:
        """Bytes after the peer's Close produce nothing."""
        events, _, eof, conn = feed_frames(close_frame(1000), client_frame(TEXT, b"ignored"), b"\xff\xff garbage")
        assert events == [CloseReceived(1000, "")] and eof
        conn.receive_data(client_frame(PING, b"x"))
        assert conn.events_received() == [] and conn.data_to_send() == []

    def test_empty_read_does_nothing(self) -> None:
        """``receive_data(b"")`` is harmless."""
        conn = Connection(Side.SERVER)
        conn.receive_data(b"")
        assert conn.events_received() == [] and conn.data_to_send() == []

    @pytest.mark.parametrize("code", [1005, 1006, 1015, 999, 5000])
    def test_sending_an_invalid_close_code_is_a_local_error(self, code: int) -> None:
        """Our caller may not put a reserved code on the wire."""
        with pytest.raises(LocalProtocolError):
            Connection(Side.SERVER).send_close(code)


class TestEOF:
    """RFC 6455 §7.1.5: TCP closing without a Close is 1006."""

    def test_eof_without_close_is_1006(self) -> None:
        """The peer vanishing mid-conversation reports 1006 locally and sends nothing."""
        events, output, conn = feed(client_frame(TEXT, b"hi"), eof=True)
        assert events == [TextMessage("hi")] and output == []
        assert conn.state is State.CLOSED and conn.close_code == CloseCode.ABNORMAL_CLOSURE

    def test_eof_while_closing_is_1006(self) -> None:
        """The peer dropping TCP instead of answering our Close is 1006."""
        conn = Connection(Side.SERVER)
        conn.send_close(1001)
        conn.receive_eof()
        assert conn.state is State.CLOSED and conn.close_code == CloseCode.ABNORMAL_CLOSURE

    def test_eof_after_close_handshake_keeps_the_code(self) -> None:
        """TCP closing after a completed close handshake keeps the real close code."""
        _, _, conn = feed(close_frame(1000, b"done"), eof=True)
        assert (conn.close_code, conn.close_reason) == (1000, "done")

    def test_eof_after_failure_keeps_the_failure_code(self) -> None:
        """TCP closing after we failed the connection keeps the failure code."""
        _, _, conn = feed(client_frame(0x3), eof=True)
        assert conn.close_code == 1002

    def test_eof_twice_is_harmless(self) -> None:
        """A second EOF changes nothing."""
        conn = Connection(Side.SERVER)
        conn.receive_eof()
        conn.receive_eof()
        assert conn.state is State.CLOSED


class TestLocalErrors:
    """Only our caller's misuse raises, as LocalProtocolError."""

    @pytest.mark.parametrize(
        "send",
        [
            lambda c: c.send_text("x"),
            lambda c: c.send_binary(b"x"),
            lambda c: c.send_ping(),
            lambda c: c.send_pong(),
            lambda c: c.send_close(),
            lambda c: c.send_shared(SharedMessage(Opcode.TEXT, b"x")),
        ],
        ids=["text", "binary", "ping", "pong", "close", "shared"],
    )
    @pytest.mark.parametrize("how", ["send_close", "peer_close", "fail", "eof"])
    def test_sending_after_close_is_a_local_error(self, send, how: str) -> None:  # type: ignore[no-untyped-def]
        """After a Close was sent or received, or the connection ended, sending raises."""
        conn = Connection(Side.SERVER)
        if how == "send_close":
            conn.send_close()
        elif how == "peer_close":
            conn.receive_data(close_frame(1000))
            conn.events_received()
        elif how == "fail":
            conn.fail(1011, "bug")
        else:
            conn.receive_eof()
        conn.data_to_send()
        with pytest.raises(LocalProtocolError):
            send(conn)
        assert conn.data_to_send() == []


class TestFail:
    """RFC 6455 §7.1.7: failing the connection."""

    def test_fail_sends_close_then_eof(self) -> None:
        """fail() queues a Close with the code, EOF and a ConnectionFailed event."""
        conn = Connection(Side.SERVER)
        error = RuntimeError("handler bug")
        conn.fail(1011, "internal error", error)
        failed(1011, *taken(conn))
        assert conn.failure is error and conn.close_reason == "internal error"

    def test_fail_twice_is_harmless(self) -> None:
        """A second fail (e.g. a timeout racing an error) does nothing."""
        conn = Connection(Side.SERVER)
        conn.fail(1011)
        conn.data_to_send()
        conn.events_received()
        conn.fail(1008)
        assert conn.data_to_send() == [] and conn.events_received() == [] and conn.close_code == 1011

    def test_fail_while_closing_sends_no_second_close(self) -> None:
        """Failing after our Close (close timeout) only closes TCP."""
        conn = Connection(Side.SERVER)
        conn.send_close()
        conn.data_to_send()
        conn.fail(1011, "close timeout")
        assert conn.data_to_send() == [EOF]


class TestSharedMessages:
    """A message encoded once for many connections goes through the core like any other."""

    def test_plain_server_connection_queues_the_shared_frames_themselves(self) -> None:
        """Without an extension the very frames of the SharedMessage are queued: nothing is re-encoded."""
        message = SharedMessage(Opcode.TEXT, b"to everyone")
        conn = Connection(Side.SERVER)
        conn.send_shared(message)
        output = conn.data_to_send()
        assert output == [server_frame(TEXT, b"to everyone")]
        assert output[0] is message.frames(conn.limits.fragment_outgoing_bytes)[0]

    def test_shared_message_keeps_its_place_among_other_sends(self) -> None:
        """Sends before and after a shared message go out in the order they were queued."""
        conn = Connection(Side.SERVER)
        conn.send_text("before")
        conn.send_shared(SharedMessage(Opcode.BINARY, b"\x01shared"))
        conn.send_ping(b"p")
        assert output_frames(conn.data_to_send(), Side.SERVER) == (
            [(True, TEXT, b"before"), (True, BINARY, b"\x01shared"), (True, PING, b"p")],
            False,
        )

    def test_shared_message_is_fragmented_at_the_connection_fragment_size(self) -> None:
        """A shared message over fragment_outgoing_bytes goes out as that connection's fragments."""
        conn = Connection(Side.SERVER, SMALL)
        conn.send_shared(SharedMessage(Opcode.BINARY, b"s" * 450))
        frames = parse_frames(b"".join(conn.data_to_send()), masked=False)
        assert [(fin, op, len(p)) for fin, op, p in frames] == [
            (False, BINARY, 200),
            (False, CONT, 200),
            (True, CONT, 50),
        ]

    def test_shared_message_after_our_close_raises_and_queues_nothing(self) -> None:
        """RFC 6455 §5.5.1: nothing follows our Close; send_shared then raises LocalProtocolError."""
        conn = Connection(Side.SERVER)
        conn.send_close(1000)
        conn.data_to_send()
        with pytest.raises(LocalProtocolError):
            conn.send_shared(SharedMessage(Opcode.TEXT, b"late"))
        assert conn.data_to_send() == []

    def test_client_encodes_a_shared_message_itself_masked(self) -> None:
        """Shared frames are unmasked; a client masks every frame (RFC 6455 §5.3), so it encodes its own."""
        message = SharedMessage(Opcode.TEXT, b"from a client")
        conn = Connection(Side.CLIENT)
        conn.send_shared(message)
        data = b"".join(conn.data_to_send())
        assert data != b"".join(message.frames(conn.limits.fragment_outgoing_bytes))
        assert parse_frames(data, masked=True) == [(True, TEXT, b"from a client")]


class TestLocalReasons:
    """Closes for reasons only the I/O layer sees: it names the reason, the core's table gives the code."""

    @pytest.mark.parametrize(("why", "payload"), [(IDLE_TIMEOUT, b"idle timeout"), (SHUTDOWN, b"server shutting down")])
    def test_close_for_starts_the_closing_handshake_with_1001(self, why: LocalClose, payload: bytes) -> None:
        """close_for sends Close 1001 with the reason's words and waits for the peer's answer."""
        conn = Connection(Side.SERVER)
        conn.close_for(why)
        assert output_frames(conn.data_to_send(), Side.SERVER) == ([(True, CLOSE, close_payload(1001, payload))], False)
        assert conn.state is State.CLOSING and (conn.close_code, conn.close_reason) == (1001, why.reason)

    @pytest.mark.parametrize("how", ["send_close", "peer_close", "fail"])
    def test_close_for_once_closing_does_nothing(self, how: str) -> None:
        """A timeout racing a close handshake already under way sends no second Close."""
        conn = Connection(Side.SERVER)
        if how == "send_close":
            conn.send_close(4000)
        elif how == "peer_close":
            conn.receive_data(close_frame(1000))
            conn.events_received()
        else:
            conn.fail(1011)
        conn.data_to_send()
        conn.close_for(SHUTDOWN)
        assert conn.data_to_send() == [] and conn.close_code != 1001

    @pytest.mark.parametrize(
        ("error", "code", "reason"),
        [
            (SlowConsumer(), 1008, b"peer is not reading"),
            (KeepaliveTimeout(), 1011, b"keepalive timeout"),
            (InternalError(), 1011, b"internal error"),
        ],
        ids=["slow-consumer", "keepalive-timeout", "handler-error"],
    )
    def test_fail_with_takes_the_code_from_the_error_type(self, error: FailReason, code: int, reason: bytes) -> None:
        """fail_with sends the Close its error type carries, closes TCP and reports ConnectionFailed."""
        conn = Connection(Side.SERVER)
        conn.fail_with(error)
        events, out, eof = taken(conn)
        assert out == [(True, CLOSE, close_payload(code, reason))] and eof
        assert events == [ConnectionFailed(code, reason.decode())]
        assert conn.failure is error and conn.failed


class TestClientSide:
    """RFC 6455 §5.1, §5.3 and §7.1.1 from the client's end."""

    def test_client_masks_its_frames(self) -> None:
        """Every frame a client writes is masked (and unmasks to what was sent)."""
        conn = Connection(Side.CLIENT)
        conn.send_text("hi")
        conn.send_binary(b"\x00")
        conn.send_ping(b"p")
        conn.send_close(1000)
        data = b"".join(conn.data_to_send())
        assert parse_frames(data, masked=True) == [
            (True, TEXT, b"hi"),
            (True, BINARY, b"\x00"),
            (True, PING, b"p"),
            (True, CLOSE, close_payload(1000)),
        ]

    def test_client_accepts_unmasked_server_frames(self) -> None:
        """A client reads the server's unmasked frames."""
        events, *_ = feed_frames(server_frame(TEXT, b"hello"), server_frame(BINARY, b"\x01"), side=Side.CLIENT)
        assert events == [TextMessage("hello"), BytesMessage(b"\x01")]

    def test_client_answers_ping_with_masked_pong(self) -> None:
        """The client's Pong is masked."""
        _, out, eof, _ = feed_frames(server_frame(PING, b"x"), side=Side.CLIENT)
        assert out == [(True, PONG, b"x")] and not eof

    def test_client_echoes_close_and_waits_for_the_server_to_close_tcp(self) -> None:
        """RFC 6455 §7.1.1: the client answers a Close but lets the server close TCP first."""
        events, out, eof, conn = feed_frames(server_frame(CLOSE, close_payload(1001)), side=Side.CLIENT)
        assert events == [CloseReceived(1001, "")] and out == [(True, CLOSE, close_payload(1001))] and not eof
        assert conn.state is State.CLOSED and conn.close_expected()

    def test_client_close_handshake(self) -> None:
        """A client's own Close, answered by the server, ends without the client closing TCP."""
        conn = Connection(Side.CLIENT)
        conn.send_close(1000)
        conn.data_to_send()
        conn.receive_data(server_frame(CLOSE, close_payload(1000)))
        assert conn.events_received() == [CloseReceived(1000, "")]
        assert conn.state is State.CLOSED and conn.data_to_send() == []

    def test_client_failure_masks_its_close(self) -> None:
        """A client failing the connection sends a masked Close and closes TCP."""
        events, out, eof, _ = feed_frames(server_frame(0x3), side=Side.CLIENT)
        failed(1002, events, out, eof)


class Outcome(NamedTuple):
    """What one input did: the new state, the events' types, the frames sent and whether TCP is to be closed."""

    state: State
    events: tuple[type, ...]
    frames: tuple[tuple[bool, int, bytes], ...]
    eof: bool


#: A local call the state forbids: LocalProtocolError, nothing changes.
RAISES = None
_CLOSE_1000 = (True, CLOSE, close_payload(1000))

#: Every (state, input) pair of a server connection and its outcome, written from RFC 6455 §5.5.1, §7
#: and §1.4 (not read from TRANSITIONS): the peer's inputs never raise, and nothing follows CLOSED.
BEHAVIOUR: dict[tuple[State, Input], Outcome | None] = {
    (State.OPEN, Input.SEND_DATA): Outcome(State.OPEN, (), ((True, TEXT, b"x"),), False),
    (State.OPEN, Input.SEND_CLOSE): Outcome(State.CLOSING, (), (_CLOSE_1000,), False),
    (State.OPEN, Input.RECEIVE_DATA): Outcome(State.OPEN, (BytesMessage,), (), False),
    # §5.5.1: answer a Close with a Close; §7.1.1: the server then closes TCP first.
    (State.OPEN, Input.RECEIVE_CLOSE): Outcome(State.CLOSED, (CloseReceived,), (_CLOSE_1000,), True),
    (State.OPEN, Input.FAIL): Outcome(State.CLOSED, (ConnectionFailed,), ((True, CLOSE, close_payload(1011)),), True),
    (State.OPEN, Input.EOF): Outcome(State.CLOSED, (), (), False),  # TCP is gone: nothing to send or close
    (State.CLOSING, Input.SEND_DATA): RAISES,  # §5.5.1: no data after our Close
    (State.CLOSING, Input.SEND_CLOSE): RAISES,
    (State.CLOSING, Input.RECEIVE_DATA): Outcome(State.CLOSING, (BytesMessage,), (), False),  # §1.4
    (State.CLOSING, Input.RECEIVE_CLOSE): Outcome(State.CLOSED, (CloseReceived,), (), True),  # no second Close
    (State.CLOSING, Input.FAIL): Outcome(State.CLOSED, (ConnectionFailed,), (), True),
    (State.CLOSING, Input.EOF): Outcome(State.CLOSED, (), (), False),
    (State.CLOSED, Input.SEND_DATA): RAISES,
    (State.CLOSED, Input.SEND_CLOSE): RAISES,
    (State.CLOSED, Input.RECEIVE_DATA): Outcome(State.CLOSED, (), (), False),
    (State.CLOSED, Input.RECEIVE_CLOSE): Outcome(State.CLOSED, (), (), False),
    (State.CLOSED, Input.FAIL): Outcome(State.CLOSED, (), (), False),
    (State.CLOSED, Input.EOF): Outcome(State.CLOSED, (), (), False),
}


class TestStateTable:
    """House rule 11: one state machine, one table."""

    @pytest.mark.parametrize("state", list(State))
    @pytest.mark.parametrize("event", list(Input))
    def test_every_pair_behaves_as_rfc_6455_says(self, state: State, event: Input) -> None:
        """Driving a server connection through each (state, input) pair gives the state, events and bytes of RFC 6455 §7."""
        expected = BEHAVIOUR[state, event]
        conn = in_state(state)
        if expected is RAISES:
            with pytest.raises(LocalProtocolError, match=f"cannot {event.value} in state {state.value}"):
                DRIVERS[event](conn)
            assert conn.state is state and conn.data_to_send() == [] and conn.events_received() == []
            return
        returned = DRIVERS[event](conn)
        events = (list(returned) if isinstance(returned, list) else []) + conn.events_received()
        frames, eof = output_frames(conn.data_to_send(), Side.SERVER)
        outcome = Outcome(conn.state, tuple(type(item) for item in events), tuple(frames), eof)
        assert outcome == expected

    def test_closed_is_final(self) -> None:
        """Nothing leaves CLOSED."""
        assert all(new is State.CLOSED for (old, _), new in TRANSITIONS.items() if old is State.CLOSED)


def in_state(state: State) -> Connection:
    """A server connection brought into ``state`` through the public API."""
    conn = Connection(Side.SERVER)
    if state is State.CLOSING:
        conn.send_close()
    elif state is State.CLOSED:
        conn.fail(1011)
    conn.data_to_send()
    conn.events_received()
    return conn


def receive(data: bytes) -> Callable[[Connection], object]:
    """An input driver that feeds ``data`` and parses it."""

    def drive(conn: Connection) -> object:
        conn.receive_data(data)
        return conn.events_received()

    return drive


#: Each input, as our caller or the peer would cause it through the public API.
DRIVERS: dict[Input, Callable[[Connection], object]] = {
    Input.SEND_DATA: lambda c: c.send_text("x"),
    Input.SEND_CLOSE: lambda c: c.send_close(),
    Input.RECEIVE_DATA: receive(client_frame(BINARY, b"x")),
    Input.RECEIVE_CLOSE: receive(close_frame(1000)),
    Input.FAIL: lambda c: c.fail(1011),
    Input.EOF: lambda c: c.receive_eof(),
}

#: Peer inputs never raise; in CLOSED they are documented no-ops (RFC 6455 §7.1.1: nothing follows).
PEER_INPUTS = {Input.RECEIVE_DATA, Input.RECEIVE_CLOSE, Input.FAIL, Input.EOF}


@given(state=st.sampled_from(list(State)), event=st.sampled_from(list(Input)))
def test_public_api_follows_the_state_table(state: State, event: Input) -> None:
    """Driving a connection in any state with any input moves per TRANSITIONS, or raises LocalProtocolError."""
    conn = in_state(state)
    if (state, event) in TRANSITIONS:
        DRIVERS[event](conn)
        assert conn.state is TRANSITIONS[state, event]
    elif event in PEER_INPUTS:
        DRIVERS[event](conn)  # the input methods never raise for what the peer does
        assert conn.state is state and conn.data_to_send() == [] and conn.events_received() == []
    else:
        with pytest.raises(LocalProtocolError):
            DRIVERS[event](conn)
        assert conn.state is state


EXPECTED_FAILURE_CODES = {1002, 1007, 1009}


def check_contract(conn: Connection, chunks: list[bytes]) -> None:
    """Feed ``chunks``; nothing may raise and the outcome must be a documented one."""
    events: list[object] = []
    output: list[bytes] = []
    for chunk in chunks:
        conn.receive_data(chunk)
        events += conn.events_received()
        output += conn.data_to_send()
    conn.receive_eof()
    assert all(isinstance(e, (TextMessage, BytesMessage, Ping, Pong, CloseReceived, ConnectionFailed)) for e in events)
    failures = [e for e in events if isinstance(e, ConnectionFailed)]
    if failures:
        assert len(failures) == 1 and events[-1] is failures[0]
        assert failures[0].code in EXPECTED_FAILURE_CODES
        assert output[-1] == EOF
    assert output.count(EOF) <= 1 and (EOF not in output or output[-1] == EOF)
    assert conn.state is State.CLOSED


FUZZ_LIMITS = Limits(max_message_bytes=300, max_frame_bytes=200, max_fragments=5)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=400), cuts=st.lists(st.integers(0, 400), max_size=5))
def test_random_bytes_never_raise(data: bytes, cuts: list[int]) -> None:
    """Arbitrary bytes, split anywhere, only ever yield events or a ConnectionFailed."""
    bounds = [0, *sorted(c for c in cuts if c <= len(data)), len(data)]
    check_contract(Connection(Side.SERVER, FUZZ_LIMITS), [data[a:b] for a, b in pairwise(bounds)])


RANDOM_FRAME = st.builds(
    lambda opcode, payload, fin, rsv, masked, lie: frame(
        opcode,
        payload,
        fin=fin,
        rsv=rsv,
        mask=b"\x01\x02\x03\x04" if masked else None,
        length=None if lie is None else lie,
    ),
    opcode=st.sampled_from([0, 1, 2, 8, 9, 10, 3, 11]),
    payload=st.binary(max_size=130)
    | st.sampled_from([b"\x03\xe8", b"\x03\xe8ok", b"\x0f\xa0", b"\xce\xba\xff", b"\xe2\x82"]),
    fin=st.booleans() | st.just(True),
    rsv=st.sampled_from([0, 0, 0, 0x40]),
    masked=st.booleans() | st.just(True) | st.just(True),
    lie=st.none() | st.none() | st.none() | st.integers(0, 2**64 - 1),
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(frames=st.lists(RANDOM_FRAME, max_size=8), cut=st.integers(0, 2000))
def test_random_frames_never_raise(frames: list[bytes], cut: int) -> None:
    """Sequences of plausible (often valid) frames never raise and end in a documented outcome."""
    data = b"".join(frames)
    check_contract(Connection(Side.SERVER, FUZZ_LIMITS), [data[:cut], data[cut:]])


@settings(max_examples=100)
@given(frames=st.lists(RANDOM_FRAME, max_size=6))
def test_random_frames_give_the_same_result_at_any_split(frames: list[bytes]) -> None:
    """Whole and byte-at-a-time feeding give the same events, output and end state."""
    feed(b"".join(frames), Side.SERVER, FUZZ_LIMITS)


def test_default_limits() -> None:
    """A connection without explicit limits uses the defaults."""
    assert Connection(Side.SERVER).limits == Limits()


def test_frame_helper_round_trip() -> None:
    """The test helper's frames are what the connection reads (sanity check of the helpers)."""
    assert output_frames([server_frame(TEXT, b"a"), EOF], Side.SERVER) == ([(True, TEXT, b"a")], True)


@given(
    frames=st.lists(
        st.tuples(st.sampled_from([Opcode.TEXT, Opcode.BINARY]), st.binary(max_size=140), st.booleans()),
        min_size=1,
        max_size=6,
    )
)
def test_small_frame_fast_path_agrees_with_the_general_path(frames: list[tuple[Opcode, bytes, bool]]) -> None:
    """Whole small frames take the fast path, byte-by-byte ones the general one: events and output match."""
    stream = b"".join(client_frame(opcode, payload, fin=fin) for opcode, payload, fin in frames)
    feed(stream, limits=Limits(max_message_bytes=100))
