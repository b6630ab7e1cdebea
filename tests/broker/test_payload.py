"""The bytes of a message between processes (wsdaemon.broker.payload): pure function calls."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wsdaemon.broker.payload import Envelope, MalformedPayload, decode, encode, encode_plain
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
