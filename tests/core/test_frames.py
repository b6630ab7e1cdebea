"""Tests for wsdaemon.core.frames: the frame parser and writer (RFC 6455 §5)."""

from __future__ import annotations

from collections.abc import Callable
from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.helpers import MASK, client_frame, frame, naive_mask, server_frame
from wsdaemon.core.errors import MessageTooBig, ProtocolViolation
from wsdaemon.core.frames import (
    RSV1,
    RSV2,
    RSV3,
    FrameChunk,
    FrameHeader,
    FrameParser,
    Opcode,
    SharedMessage,
    apply_mask,
    encode_message,
    serialize_frame,
)

DATA_OPCODES = [Opcode.CONTINUATION, Opcode.TEXT, Opcode.BINARY]
CONTROL_OPCODES = [Opcode.CLOSE, Opcode.PING, Opcode.PONG]
RESERVED_OPCODES = [0x3, 0x4, 0x5, 0x6, 0x7, 0xB, 0xC, 0xD, 0xE, 0xF]


def server_parser(max_frame_bytes: int = 2**20, allowed_rsv: int = 0) -> FrameParser:
    """A parser as the server runs it: client frames must be masked."""
    return FrameParser(expect_masked=True, max_frame_bytes=max_frame_bytes, allowed_rsv=allowed_rsv)


def client_parser(max_frame_bytes: int = 2**20) -> FrameParser:
    """A parser as the client runs it: server frames must not be masked."""
    return FrameParser(expect_masked=False, max_frame_bytes=max_frame_bytes)


def drain(parser: FrameParser) -> list[FrameChunk]:
    """Every chunk the parser can hand out now."""
    chunks = []
    while (chunk := parser.next_chunk()) is not None:
        chunks.append(chunk)
    return chunks


def parse_split(parser: FrameParser, data: bytes, cuts: list[int]) -> list[tuple[FrameHeader, bytes]]:
    """Feed ``data`` cut at ``cuts``; return each complete frame as (header, whole payload)."""
    frames: list[tuple[FrameHeader, bytes]] = []
    parts: list[bytes] = []
    bounds = [0, *sorted(set(cuts)), len(data)]
    for start, end in pairwise(bounds):
        parser.feed(data[start:end])
        for chunk in drain(parser):
            assert chunk.first == (not parts), "first must mark exactly a frame's first chunk"
            parts.append(chunk.payload)
            if chunk.last:
                frames.append((chunk.header, b"".join(parts)))
                parts = []
    assert not parts and parser.buffered() == 0
    return frames


def parse_one(parser: FrameParser, data: bytes) -> tuple[FrameHeader, bytes]:
    """Parse exactly one frame, fed whole and then one byte at a time, and check both agree."""
    whole = parse_split(parser, data, [])
    fresh = FrameParser(
        expect_masked=parser.expect_masked, max_frame_bytes=parser.max_frame_bytes, allowed_rsv=parser.allowed_rsv
    )
    bytewise = parse_split(fresh, data, list(range(1, len(data))))
    assert len(whole) == 1
    assert whole == bytewise
    return whole[0]


def rejects(
    parser_factory: Callable[[], FrameParser], data: bytes, error: type[Exception], match: str | None = None
) -> None:
    """``data`` raises ``error`` both fed whole and fed one byte at a time."""
    for pieces in ([data], [data[i : i + 1] for i in range(len(data))]):
        parser = parser_factory()
        with pytest.raises(error, match=match):
            for piece in pieces:
                parser.feed(piece)
                drain(parser)


class TestBaseFraming:
    """RFC 6455 §5.2: the base framing protocol."""

    @pytest.mark.parametrize("length", [0, 1, 125])
    def test_seven_bit_length(self, length: int) -> None:
        """A payload of up to 125 bytes has its length in the second byte."""
        data = client_frame(Opcode.BINARY, b"x" * length)
        assert len(data) == 2 + 4 + length
        header, payload = parse_one(server_parser(), data)
        assert (header.length, payload) == (length, b"x" * length)

    @pytest.mark.parametrize("length", [126, 127, 1000, 65535])
    def test_sixteen_bit_length(self, length: int) -> None:
        """A payload of 126..65535 bytes has a 16-bit extended length."""
        data = client_frame(Opcode.BINARY, bytes(range(256)) * (length // 256) + b"y" * (length % 256))
        assert data[1] & 0x7F == 126
        header, payload = parse_one(server_parser(), data)
        assert header.length == len(payload) == length

    @pytest.mark.parametrize("length", [65536, 70000])
    def test_sixty_four_bit_length(self, length: int) -> None:
        """A payload of 65536 bytes or more has a 64-bit extended length."""
        body = b"z" * length
        data = client_frame(Opcode.BINARY, body)
        assert data[1] & 0x7F == 127
        header, payload = parse_split(server_parser(), data, [1, 2, 5, 9, 14, 100, 40000])[0]
        assert header.length == length and payload == body

    def test_sixty_four_bit_length_with_high_bit_set_is_rejected(self) -> None:
        """RFC 6455 §5.2: the most significant bit of a 64-bit length must be 0."""
        data = bytes([0x82, 0xFF]) + (2**63).to_bytes(8, "big") + MASK
        rejects(lambda: server_parser(max_frame_bytes=2**40), data, ProtocolViolation, "high bit")

    @pytest.mark.parametrize("opcode", [*DATA_OPCODES, *CONTROL_OPCODES])
    def test_every_defined_opcode_parses(self, opcode: Opcode) -> None:
        """Each defined opcode comes through with its payload intact."""
        header, payload = parse_one(server_parser(), client_frame(opcode, b"abc"))
        assert (header.opcode, header.fin, header.rsv, payload) == (opcode, True, 0, b"abc")
        assert header.is_control == (opcode >= 0x8)

    @pytest.mark.parametrize("opcode", RESERVED_OPCODES)
    def test_reserved_opcode_is_rejected(self, opcode: int) -> None:
        """RFC 6455 §5.2: a reserved opcode fails the connection with 1002."""
        rejects(server_parser, client_frame(opcode, b"abc"), ProtocolViolation, "reserved opcode")

    def test_reserved_opcode_is_rejected_from_the_first_two_bytes(self) -> None:
        """The opcode check does not wait for the extended length or the mask."""
        parser = server_parser()
        parser.feed(bytes([0x83, 0xFE]))
        with pytest.raises(ProtocolViolation):
            parser.next_chunk()

    @pytest.mark.parametrize("rsv", [RSV1, RSV2, RSV3, RSV1 | RSV3])
    def test_rsv_bits_without_extension_are_rejected(self, rsv: int) -> None:
        """RFC 6455 §5.2: RSV bits must be 0 unless an extension defines them."""
        rejects(server_parser, client_frame(Opcode.TEXT, b"hi", rsv=rsv), ProtocolViolation, "reserved bits")

    def test_rsv_bit_allowed_by_an_extension_is_kept(self) -> None:
        """An RSV bit that an extension negotiated passes through in the header."""
        header, _ = parse_one(server_parser(allowed_rsv=RSV1), client_frame(Opcode.TEXT, b"hi", rsv=RSV1))
        assert header.rsv == RSV1

    def test_rsv_bit_not_negotiated_is_rejected_even_when_another_is(self) -> None:
        """Only the negotiated RSV bits are allowed."""
        rejects(lambda: server_parser(allowed_rsv=RSV1), client_frame(Opcode.TEXT, b"", rsv=RSV2), ProtocolViolation)

    def test_frames_back_to_back_in_one_read(self) -> None:
        """Several frames in one read come out one by one, in order."""
        data = (
            client_frame(Opcode.TEXT, b"one", fin=False)
            + client_frame(Opcode.PING, b"p")
            + client_frame(Opcode.CONTINUATION, b"two")
        )
        frames = parse_split(server_parser(), data, [])
        assert [(h.opcode, h.fin, p) for h, p in frames] == [
            (Opcode.TEXT, False, b"one"),
            (Opcode.PING, True, b"p"),
            (Opcode.CONTINUATION, True, b"two"),
        ]

    def test_buffered_counts_unparsed_bytes(self) -> None:
        """``buffered`` reports bytes received and not yet handed out."""
        parser = server_parser()
        parser.feed(client_frame(Opcode.PING, b"abc")[:5])
        assert parser.next_chunk() is None
        assert parser.buffered() == 5


class TestControlFrames:
    """RFC 6455 §5.5: control frames are short and never fragmented."""

    @pytest.mark.parametrize("opcode", CONTROL_OPCODES)
    def test_control_frame_of_125_bytes_is_accepted(self, opcode: Opcode) -> None:
        """125 bytes is the largest control payload."""
        payload = b"\x03\xe8" + b"r" * 123 if opcode == Opcode.CLOSE else b"p" * 125
        _, parsed = parse_one(server_parser(), client_frame(opcode, payload))
        assert parsed == payload

    @pytest.mark.parametrize("opcode", CONTROL_OPCODES)
    def test_control_frame_over_125_bytes_is_rejected(self, opcode: Opcode) -> None:
        """RFC 6455 §5.5: a control payload of 126 bytes fails with 1002."""
        rejects(server_parser, client_frame(opcode, b"p" * 126), ProtocolViolation, "over 125")

    @pytest.mark.parametrize("opcode", CONTROL_OPCODES)
    def test_fragmented_control_frame_is_rejected(self, opcode: Opcode) -> None:
        """RFC 6455 §5.5: a control frame without FIN fails with 1002."""
        rejects(server_parser, client_frame(opcode, b"p", fin=False), ProtocolViolation, "fragmented control")

    def test_control_payload_is_handed_out_whole(self) -> None:
        """A control frame arriving byte by byte is still one chunk."""
        parser = server_parser()
        data = client_frame(Opcode.PING, b"hello")
        chunks = []
        for i in range(len(data)):
            parser.feed(data[i : i + 1])
            chunks += drain(parser)
        assert [(c.payload, c.first, c.last) for c in chunks] == [(b"hello", True, True)]


class TestMasking:
    """RFC 6455 §5.1 and §5.3: who masks, and how."""

    @given(data=st.binary(max_size=300), mask=st.binary(min_size=4, max_size=4))
    def test_apply_mask_matches_a_byte_loop(self, data: bytes, mask: bytes) -> None:
        """The fast XOR equals the byte loop of RFC 6455 §5.3."""
        assert apply_mask(data, mask) == naive_mask(data, mask)

    def test_apply_mask_is_its_own_inverse(self) -> None:
        """Masking twice gives the original payload back."""
        data = bytes(range(256)) * 3
        assert apply_mask(apply_mask(data, MASK), MASK) == data

    def test_apply_mask_of_nothing_is_nothing(self) -> None:
        """An empty payload stays empty."""
        assert apply_mask(b"", MASK) == b""

    def test_masked_payload_is_unmasked_at_every_split(self) -> None:
        """A masked payload split anywhere is unmasked right (the key rotates with the offset)."""
        body = bytes(range(200))
        data = client_frame(Opcode.BINARY, body)
        for cut in range(len(data)):
            assert parse_split(server_parser(), data, [cut])[0][1] == body

    def test_unmasked_client_frame_is_rejected(self) -> None:
        """RFC 6455 §5.1: a server fails a client frame that is not masked."""
        rejects(server_parser, server_frame(Opcode.TEXT, b"hi"), ProtocolViolation, "must be masked")

    def test_masked_server_frame_is_rejected(self) -> None:
        """RFC 6455 §5.1: a client fails a server frame that is masked."""
        rejects(client_parser, client_frame(Opcode.TEXT, b"hi"), ProtocolViolation, "must not be masked")

    def test_client_parser_reads_unmasked_frames(self) -> None:
        """A client reads the server's unmasked frames, with no mask in the header."""
        header, payload = parse_one(client_parser(), server_frame(Opcode.TEXT, b"hi"))
        assert header.mask is None and payload == b"hi"


class TestFrameSizeLimit:
    """House rule 6: check the declared length before buffering anything."""

    def test_frame_over_max_frame_bytes_is_rejected_from_its_header(self) -> None:
        """A frame declaring more than max_frame_bytes fails before any payload arrives."""
        header_only = client_frame(Opcode.BINARY, b"", length=1001)
        rejects(lambda: server_parser(max_frame_bytes=1000), header_only, MessageTooBig, "over the limit")

    def test_frame_at_max_frame_bytes_is_accepted(self) -> None:
        """A frame of exactly max_frame_bytes is fine."""
        _, payload = parse_split(server_parser(max_frame_bytes=1000), client_frame(Opcode.BINARY, b"a" * 1000), [])[0]
        assert len(payload) == 1000

    def test_huge_declared_length_costs_no_memory(self) -> None:
        """A 2**62-byte declaration is refused from 14 bytes of header."""
        data = bytes([0x82, 0xFF]) + (2**62).to_bytes(8, "big") + MASK
        rejects(server_parser, data, MessageTooBig)


class TestChunks:
    """Data payloads stream out as they arrive; control payloads come whole."""

    @pytest.mark.parametrize(
        ("opcode", "fin", "rsv"),
        [(Opcode.TEXT, True, 0), (Opcode.BINARY, False, 0), (Opcode.BINARY, True, RSV1)],
        ids=["text", "fragmented binary", "compressed binary"],
    )
    def test_data_payload_streams_in_chunks(self, opcode: Opcode, fin: bool, rsv: int) -> None:
        """Each read of a text, fragmented or compressed frame's payload is handed out at once.

        Text is validated as it arrives (RFC 6455 §8.1), and a compressed
        payload is inflated as it arrives, within the message limit.
        """
        parser = server_parser(allowed_rsv=RSV1)
        data = client_frame(opcode, b"abcdef", fin=fin, rsv=rsv)
        parser.feed(data[: 6 + 2])
        first = drain(parser)
        parser.feed(data[8:])
        rest = drain(parser)
        assert [(c.payload, c.first, c.last) for c in first + rest] == [(b"ab", True, False), (b"cdef", False, True)]

    @pytest.mark.parametrize("make_parser", [server_parser, client_parser], ids=["masked", "unmasked"])
    def test_whole_binary_message_frame_is_collected(self, make_parser: Callable[[], FrameParser]) -> None:
        """A one-frame binary message arriving in pieces: the header at once, then the payload whole.

        The empty first chunk lets the caller check the declared length before
        anything is kept; the payload is unmasked once, when complete.
        """
        parser = make_parser()
        payload = bytes(range(256)) * 41
        data = (client_frame if make_parser is server_parser else server_frame)(Opcode.BINARY, payload)
        chunks = []
        for start in range(0, len(data), 997):
            parser.feed(data[start : start + 997])
            chunks += drain(parser)
        assert [(c.payload, c.first, c.last) for c in chunks] == [(b"", True, False), (payload, False, True)]
        assert type(chunks[1].payload) is bytes
        parser.feed(
            client_frame(Opcode.TEXT, b"next") if make_parser is server_parser else server_frame(Opcode.TEXT, b"next")
        )
        assert [c.payload for c in drain(parser)] == [b"next"]

    def test_collected_binary_frame_byte_at_a_time(self) -> None:
        """Fed one byte at a time, the collected payload still comes out once, unmasked."""
        parser = server_parser()
        payload = b"0123456789" * 7
        chunks = []
        for byte in client_frame(Opcode.BINARY, payload):
            parser.feed(bytes([byte]))
            chunks += drain(parser)
        assert [(c.payload, c.first, c.last) for c in chunks] == [(b"", True, False), (payload, False, True)]

    def test_header_alone_yields_an_empty_first_chunk(self) -> None:
        """A data header with no payload yet still starts the frame, so size checks can run early."""
        parser = server_parser()
        data = client_frame(Opcode.TEXT, b"hello")
        parser.feed(data[:6])
        assert [(c.payload, c.first, c.last) for c in drain(parser)] == [(b"", True, False)]
        parser.feed(data[6:])
        assert [(c.payload, c.first, c.last) for c in drain(parser)] == [(b"hello", False, True)]

    def test_empty_data_frame_is_one_chunk(self) -> None:
        """A zero-length data frame is a single first-and-last chunk."""
        parser = server_parser()
        parser.feed(client_frame(Opcode.BINARY, b""))
        chunks = drain(parser)
        assert [(c.payload, c.first, c.last) for c in chunks] == [(b"", True, True)]


class TestSerialize:
    """serialize_frame writes what the parser reads."""

    @pytest.mark.parametrize(("length", "head_bytes"), [(0, 2), (125, 2), (126, 4), (65535, 4), (65536, 10)])
    def test_length_encoding_is_minimal(self, length: int, head_bytes: int) -> None:
        """RFC 6455 §5.2: the shortest length form is used."""
        data = b"".join(serialize_frame(Opcode.BINARY, b"\0" * length))
        assert len(data) == head_bytes + length
        assert data == server_frame(Opcode.BINARY, b"\0" * length)

    def test_small_frame_is_one_write(self) -> None:
        """A small frame is a single byte string (header and payload together)."""
        assert serialize_frame(Opcode.TEXT, b"hi") == [b"\x81\x02hi"]

    def test_large_payload_is_not_copied_behind_its_header(self) -> None:
        """A large payload comes back as its own byte string."""
        payload = b"q" * 20000
        head, body = serialize_frame(Opcode.BINARY, payload)
        assert body is payload and head == b"\x82\x7e" + (20000).to_bytes(2, "big")

    def test_masked_frames_get_a_fresh_key_each(self) -> None:
        """RFC 6455 §5.3: each client frame gets its own unpredictable key."""
        keys = {b"".join(serialize_frame(Opcode.TEXT, b"x", mask=True))[2:6] for _ in range(20)}
        assert len(keys) > 1

    def test_fin_and_rsv_bits_are_written(self) -> None:
        """FIN=0 and RSV1 show up in the first byte."""
        assert serialize_frame(Opcode.TEXT, b"", fin=False, rsv=RSV1)[0][0] == 0x41


class TestEncodeMessage:
    """encode_message: the one outgoing fragmenter, for a connection's own messages and shared ones (RFC 6455 §5.4)."""

    def test_message_is_split_at_the_fragment_size(self) -> None:
        """The first frame has the opcode, the rest are continuations, FIN only on the last."""
        frames = b"".join(encode_message(Opcode.TEXT, b"abcdefghij", 4))
        assert frames == b"\x01\x04abcd" + b"\x00\x04efgh" + b"\x80\x02ij"

    def test_message_of_the_fragment_size_is_one_frame(self) -> None:
        """A message no longer than fragment_bytes is exactly serialize_frame's one frame."""
        assert encode_message(Opcode.BINARY, b"x" * 125, 125) == serialize_frame(Opcode.BINARY, b"x" * 125)

    def test_rsv_goes_on_the_first_frame_only(self) -> None:
        """RFC 7692 §6.1: a compressed message has RSV1 on its first frame, never on continuations."""
        frames = encode_message(Opcode.BINARY, b"z" * 10, 4, rsv=RSV1)
        assert [frame[0] for frame in frames] == [0x40 | 0x02, 0x00, 0x80]

    def test_masked_fragments_unmask_to_the_message(self) -> None:
        """A client's fragments are each masked (RFC 6455 §5.3) and reassemble to the message."""
        data = b"".join(encode_message(Opcode.TEXT, b"masked message", 5, mask=True))
        parser = FrameParser(expect_masked=True, max_frame_bytes=100)
        parser.feed(data)
        chunks = drain(parser)
        assert [c.header.opcode for c in chunks] == [Opcode.TEXT, Opcode.CONTINUATION, Opcode.CONTINUATION]
        assert b"".join(c.payload for c in chunks) == b"masked message"


class TestSharedMessage:
    """A message framed once for many server connections."""

    def test_frames_are_cached_per_fragment_size(self) -> None:
        """SharedMessage.frames returns the same list for the same fragment size and re-encodes for another."""
        message = SharedMessage(Opcode.BINARY, b"x" * 300)
        first = message.frames(1024)
        assert message.frames(1024) is first
        assert first == encode_message(Opcode.BINARY, b"x" * 300, 1024)
        assert len(message.frames(125)) == 3


def _repeat_to(length: int, seed: bytes) -> bytes:
    return (seed * (length // len(seed) + 1))[:length]


PAYLOADS = st.binary(max_size=200) | st.builds(
    _repeat_to, st.sampled_from([125, 126, 127, 65535, 65536, 65537]), st.binary(min_size=1, max_size=7)
)
FRAMES = st.tuples(st.sampled_from([*DATA_OPCODES, *CONTROL_OPCODES]), st.booleans(), PAYLOADS, st.booleans())


@given(frames=st.lists(FRAMES, min_size=1, max_size=4), masked=st.booleans(), data=st.data())
def test_parse_of_serialize_is_identity(
    frames: list[tuple[Opcode, bool, bytes, bool]], masked: bool, data: st.DataObject
) -> None:
    """parse(serialize(frame)) == frame for any opcode, FIN, payload, mask and split points."""
    expected = []
    stream = b""
    for opcode, fin, payload, rsv1 in frames:
        if opcode >= 0x8:
            fin, payload = True, payload[:125]
        # RFC 7692 §6.1: RSV1 may only start a data message.
        rsv = RSV1 if rsv1 and opcode in (Opcode.TEXT, Opcode.BINARY) else 0
        stream += b"".join(serialize_frame(opcode, payload, fin=fin, rsv=rsv, mask=masked))
        expected.append((opcode, fin, rsv, payload))
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=8))
    parser = FrameParser(expect_masked=masked, max_frame_bytes=2**20, allowed_rsv=RSV1)
    parsed = parse_split(parser, stream, cuts)
    assert [(h.opcode, h.fin, h.rsv, p) for h, p in parsed] == expected
    assert all((h.mask is not None) == masked and h.length == len(p) for h, p in parsed)


def test_hand_built_and_serialized_frames_agree() -> None:
    """The test helper and serialize_frame write the same unmasked bytes."""
    assert frame(Opcode.PING, b"abc") == b"".join(serialize_frame(Opcode.PING, b"abc"))


@pytest.mark.parametrize("opcode", [Opcode.CONTINUATION, Opcode.PING, Opcode.PONG, Opcode.CLOSE])
def test_rsv1_on_control_or_continuation_frame_is_rejected_even_with_deflate(opcode: Opcode) -> None:
    """RSV1 is allowed only on the first frame of a data message (RFC 7692 §6.1)."""
    parser = FrameParser(expect_masked=False, max_frame_bytes=2**20, allowed_rsv=RSV1)
    parser.feed(b"".join(serialize_frame(opcode, b"x", rsv=RSV1)))
    with pytest.raises(ProtocolViolation, match="control or continuation"):
        parser.next_chunk()
