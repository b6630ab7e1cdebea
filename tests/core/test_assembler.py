"""Tests for wsdaemon.core.assembler: data frames into messages, under the limits (RFC 6455 §5.4, RFC 7692 §6).

The assembler is driven directly, frame header by frame header and piece by
piece, as the connection drives it; what the connection makes of its errors
(the Close frames) is tested in test_connection.py.
"""

from __future__ import annotations

import zlib

import pytest

from tests.helpers import client_frame
from wsdaemon.core.assembler import MessageAssembler
from wsdaemon.core.connection import Connection
from wsdaemon.core.deflate import DeflateParams, PerMessageDeflate, compressed_size_bound
from wsdaemon.core.errors import InvalidUTF8, MessageTooBig, ProtocolViolation
from wsdaemon.core.events import BytesMessage, ConnectionFailed, TextMessage
from wsdaemon.core.frames import RSV1, Opcode
from wsdaemon.core.limits import Limits
from wsdaemon.core.states import Side

TEXT, BINARY, CONT = Opcode.TEXT, Opcode.BINARY, Opcode.CONTINUATION
SMALL = Limits(max_message_bytes=1000, max_frame_bytes=500, max_fragments=4)


def assembler(limits: Limits = SMALL, deflate: bool = False) -> MessageAssembler:
    """An assembler for ``limits``, with a permessage-deflate codec if asked."""
    return MessageAssembler(limits, PerMessageDeflate(DeflateParams()) if deflate else None)


def compress(data: bytes) -> bytes:
    """What a peer sends for a compressed message: raw deflate without the sync-flush tail."""
    compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
    return (compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH))[:-4]


class TestMessages:
    """RFC 6455 §5.6: text and binary messages, whole or in fragments."""

    def test_whole_text_frame_is_one_message(self) -> None:
        """A final frame that arrives in one piece is a TextMessage at once."""
        asm = assembler()
        asm.start_frame(TEXT, 6)
        assert asm.add("héllo".encode(), True) == TextMessage("héllo")
        assert asm.opcode is None

    def test_whole_binary_frame_is_delivered_without_a_copy(self) -> None:
        """A binary message in one piece is handed on as the same bytes object (no join)."""
        asm = assembler()
        payload = bytes(range(200))
        asm.start_frame(BINARY, len(payload))
        message = asm.add(payload, True)
        assert isinstance(message, BytesMessage) and message.data is payload

    def test_fragments_are_joined_in_order(self) -> None:
        """Text split over frames, even inside a character, is one message."""
        data = "κόσμε".encode()
        asm = assembler()
        asm.start_frame(TEXT, 3)
        assert asm.add(data[:3], False) is None
        asm.start_frame(CONT, len(data) - 3)
        assert asm.add(data[3:], True) == TextMessage("κόσμε")

    def test_binary_pieces_of_one_frame_are_joined(self) -> None:
        """A binary frame that arrives in several reads is one message."""
        asm = assembler()
        asm.start_frame(BINARY, 4)
        asm.add(b"", False)  # the header arrived before any payload
        asm.add(b"ab", False)
        assert asm.add(b"cd", True) == BytesMessage(b"abcd")

    def test_invalid_utf8_fails_in_the_piece_that_carries_it(self) -> None:
        """Autobahn 6.4.*: the bad bytes fail at once, before the rest of the message arrives."""
        asm = assembler()
        asm.start_frame(TEXT, 100, 0)
        asm.add(b"fine so far", False)
        with pytest.raises(InvalidUTF8):
            asm.add(b"\xf4\x90\x80\x80", False)

    def test_text_ending_inside_a_character_is_invalid(self) -> None:
        """A text message whose last piece stops mid-character is invalid UTF-8."""
        asm = assembler()
        asm.start_frame(TEXT, 4)
        asm.add(b"ok", False)
        with pytest.raises(InvalidUTF8):
            asm.add(b"\xe2\x82", True)

    def test_reset_drops_a_half_message(self) -> None:
        """After reset (the connection closed), a new message may start; nothing of the old one is kept."""
        asm = assembler()
        asm.start_frame(BINARY, 3)
        asm.add(b"old", False)
        asm.reset()
        asm.start_frame(BINARY, 3)
        assert asm.add(b"new", True) == BytesMessage(b"new")


class TestFragmentationRules:
    """RFC 6455 §5.4: continuation frames continue exactly one open message."""

    def test_continuation_without_a_message_is_a_protocol_violation(self) -> None:
        """A continuation frame with nothing to continue is refused from its header."""
        with pytest.raises(ProtocolViolation, match="continuation frame without a message"):
            assembler().start_frame(CONT, 1)

    @pytest.mark.parametrize("opcode", [TEXT, BINARY])
    def test_new_message_inside_a_fragmented_one_is_a_protocol_violation(self, opcode: Opcode) -> None:
        """A text or binary frame before the open message ended is refused."""
        asm = assembler()
        asm.start_frame(TEXT, 1)
        asm.add(b"a", False)
        with pytest.raises(ProtocolViolation, match="new data frame inside a fragmented message"):
            asm.start_frame(opcode, 1)

    def test_more_than_max_fragments_frames_is_too_big(self) -> None:
        """The fifth frame of a message is refused when max_fragments is 4."""
        asm = assembler()
        asm.start_frame(BINARY, 0)
        for _ in range(3):
            asm.start_frame(CONT, 0)
        with pytest.raises(MessageTooBig, match="more than 4 frames"):
            asm.start_frame(CONT, 0)


class TestTheOneSizeCheck:
    """House rule 6: the message size is checked once per frame, on its declared length, before buffering."""

    def test_declared_lengths_over_the_limit_fail_before_any_payload(self) -> None:
        """Fragments declaring 1001 bytes in all fail at the header of the one that crosses 1000."""
        asm = assembler()
        asm.start_frame(BINARY, 500)
        asm.add(b"x" * 500, False)
        with pytest.raises(MessageTooBig, match="over the limit of 1000 bytes"):
            asm.start_frame(CONT, 501)

    def test_exactly_the_limit_is_accepted(self) -> None:
        """Fragments adding up to exactly max_message_bytes make a message."""
        asm = assembler()
        asm.start_frame(BINARY, 500)
        asm.add(b"x" * 500, False)
        asm.start_frame(CONT, 500)
        assert asm.add(b"y" * 500, True) == BytesMessage(b"x" * 500 + b"y" * 500)

    def test_a_single_frame_over_the_limit_fails_from_its_header(self) -> None:
        """One frame declaring more than max_message_bytes fails without any payload."""
        with pytest.raises(MessageTooBig):
            assembler().start_frame(TEXT, 1001)

    def test_a_compressed_message_may_be_a_little_larger_on_the_wire(self) -> None:
        """With RSV1 the wire allowance is compressed_size_bound(max_message_bytes); one byte more fails."""
        bound = compressed_size_bound(1000)
        ok = assembler(deflate=True)
        ok.start_frame(BINARY, bound, RSV1)
        assert ok.opcode == BINARY
        with pytest.raises(MessageTooBig):
            assembler(deflate=True).start_frame(BINARY, bound + 1, RSV1)

    def test_an_uncompressed_message_on_a_deflate_connection_keeps_the_exact_limit(self) -> None:
        """Without RSV1 the allowance does not apply, even with deflate negotiated."""
        with pytest.raises(MessageTooBig):
            assembler(deflate=True).start_frame(BINARY, 1001)

    def test_inflating_past_the_limit_fails_while_inflating(self) -> None:
        """A compressed message within the wire allowance that inflates past the limit is too big (a bomb)."""
        bomb = compress(b"A" * 5000)
        asm = assembler(deflate=True)
        asm.start_frame(BINARY, len(bomb), RSV1)
        with pytest.raises(MessageTooBig, match="inflates past the size limit"):
            asm.add(bomb, True)

    def test_compressed_message_inflates(self) -> None:
        """A compressed message in two fragments inflates to the original text."""
        data = compress("déjà vu ".encode() * 20)
        asm = assembler(deflate=True)
        asm.start_frame(TEXT, 10, RSV1)
        assert asm.add(data[:10], False) is None
        asm.start_frame(CONT, len(data) - 10)
        assert asm.add(data[10:], True) == TextMessage("déjà vu " * 20)

    @pytest.mark.parametrize(("size", "fails"), [(10, False), (11, True)])
    def test_small_frames_are_checked_when_the_limit_is_below_125_bytes(self, size: int, fails: bool) -> None:
        """With max_message_bytes = 10, a whole 11-byte frame fails with 1009 (the fast path steps aside)."""
        conn = Connection(Side.SERVER, Limits(max_message_bytes=10))
        conn.receive_data(client_frame(BINARY, b"z" * size))
        expected = ConnectionFailed(1009, "message over the limit of 10 bytes") if fails else BytesMessage(b"z" * size)
        assert conn.events_received() == [expected]
