"""The bytes of a message between processes (wsdaemon.broker.payload): pure function calls."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wsdaemon.broker.payload import (
    HEADER_BYTES,
    Envelope,
    MalformedPayload,
    decode,
    encode,
    encode_plain,
    encode_positioned,
    header_opcode,
    positioned_header,
)
from wsdaemon.core.frames import Opcode

ORIGIN = b"\x01\x02\x03\x04\x05\x06\x07\x08"


def test_redis_cli_text_is_a_t_and_the_text():
    """What a backend writes with redis-cli PUBLISH ... 'thello' is the text message "hello"."""
    assert decode(b"thello") == Envelope(Opcode.TEXT, b"hello")
    assert encode_plain(Opcode.TEXT, "héllo".encode()) == "théllo".encode()


def test_b_marks_binary_and_keeps_every_byte():
    """A payload starting with b is a binary message of exactly the bytes after it (NUL, CR, LF included)."""
    data = bytes(range(256))
    assert decode(b"b" + data) == Envelope(Opcode.BINARY, data)
    assert decode(b"b") == Envelope(Opcode.BINARY, b"")


@given(st.binary(), st.integers(min_value=0, max_value=2**64 - 1))
def test_binary_from_a_daemon_round_trips(data, sequence):
    """Any binary message and sequence number from a daemon decode to the same bytes, origin and number."""
    assert decode(encode(Opcode.BINARY, data, ORIGIN, sequence)) == Envelope(Opcode.BINARY, data, ORIGIN, sequence)


@given(st.text())
def test_text_from_a_daemon_round_trips(text):
    """Any text message from a daemon decodes to the same text."""
    envelope = decode(encode(Opcode.TEXT, text.encode("utf-8", "surrogatepass"), ORIGIN, 7))
    assert (envelope.opcode, envelope.data.decode("utf-8", "surrogatepass")) == (Opcode.TEXT, text)


def test_the_daemon_header_is_17_bytes():
    """A daemon's payload costs 17 bytes on top of the message: kind, 8 bytes of origin, 8 of sequence."""
    assert len(encode(Opcode.TEXT, b"abc", ORIGIN, 1)) == 17 + 3


@pytest.mark.parametrize(
    ("payload", "problem"),
    [
        (b"", "got nothing"),
        (b"hello", "starts with t (text) or b (binary)"),
        (b"T" + b"\x00" * 10, "17-byte header"),
        (b"t\xff\xfe", "not UTF-8"),
        (b"T" + ORIGIN + b"\x00" * 8 + b"\xc3", "not UTF-8"),
    ],
)
def test_malformed_payloads_raise_only_malformed_payload(payload, problem):
    """Empty, unmarked, truncated and non-UTF-8 text payloads each raise MalformedPayload saying why."""
    with pytest.raises(MalformedPayload) as raised:
        decode(payload)
    assert problem in str(raised.value)


@given(st.binary())
def test_random_bytes_decode_or_raise_malformed_payload(data):
    """Whatever anyone PUBLISHes, decoding gives an Envelope or MalformedPayload, nothing else."""
    try:
        decode(data)
    except MalformedPayload:
        pass


EPOCH = "6743a1f0-9c1e2b3a4d5f6a7b"


@given(st.binary(), st.booleans(), st.integers(min_value=1, max_value=2**53 - 1))
def test_a_positioned_payload_round_trips(data, binary, offset):
    """Any message with any offset and an epoch decodes to the same bytes, origin, sequence and position."""
    opcode = Opcode.BINARY if binary else Opcode.TEXT
    if not binary:
        data = data.decode("utf-8", "replace").encode("utf-8")
    encoded = encode_positioned(opcode, data, ORIGIN, 9, EPOCH, offset)
    assert decode(encoded) == Envelope(opcode, data, ORIGIN, 9, EPOCH, offset)


def test_a_positioned_payload_is_the_header_then_the_position_as_text():
    """The position is 'EPOCH OFFSET ' after the 17-byte header: what the Redis script writes by concatenation."""
    header = positioned_header(Opcode.TEXT, ORIGIN, 1)
    assert header == b"P" + ORIGIN + (1).to_bytes(8, "big") and len(header) == HEADER_BYTES
    assert encode_positioned(Opcode.TEXT, b"hi there", ORIGIN, 1, "e1", 42) == header + b"e1 42 hi there"
    assert header_opcode(header) is Opcode.TEXT
    assert header_opcode(positioned_header(Opcode.BINARY, ORIGIN, 1)) is Opcode.BINARY


def test_unpositioned_payloads_have_no_position():
    """t, b, T and B payloads decode as before, with epoch and offset None (backends and older daemons)."""
    for data in (b"thello", encode(Opcode.BINARY, b"x", ORIGIN, 3)):
        envelope = decode(data)
        assert (envelope.epoch, envelope.offset) == (None, None)


@pytest.mark.parametrize(
    "position",
    [
        b"",  # nothing after the header
        b"e1",  # no space after the epoch
        b"e1 12",  # no space after the offset
        b" 12 x",  # an empty epoch
        b"e!1 12 x",  # a character no epoch has
        b"e" * 65 + b" 1 x",  # an epoch too long
        b"e1 0 x",  # offset 0 is 'before the first message'
        b"e1 -1 x",
        b"e1 1e3 x",
        b"e1 9007199254740992 x",  # 2**53
        b"e1 99999999999999999 x",  # 17 digits
    ],
)
def test_a_malformed_position_is_a_malformed_payload(position):
    """Positions from strangers are judged: every problem is a MalformedPayload naming what is wrong."""
    with pytest.raises(MalformedPayload, match="positioned payload"):
        decode(positioned_header(Opcode.TEXT, ORIGIN, 1) + position)


def test_a_short_positioned_header_is_malformed():
    """A P payload shorter than its header is refused like a T one."""
    with pytest.raises(MalformedPayload, match="17-byte header"):
        decode(b"P" + ORIGIN)
