"""The tests' own frame decoder (tests/wire.py), checked against RFC 6455's example frames (§5.7)."""

from __future__ import annotations

import pytest

from tests.wire import WireError, WireFrame, decode_frames

TEXT, BINARY, CONTINUATION, PING, PONG = 0x1, 0x2, 0x0, 0x9, 0xA


def test_the_rfc_examples_decode_to_what_the_rfc_says():
    """The byte sequences of RFC 6455 §5.7 decode to the frames the RFC describes."""
    hello_unmasked = bytes([0x81, 0x05, 0x48, 0x65, 0x6C, 0x6C, 0x6F])
    assert decode_frames(hello_unmasked, masked=False) == [WireFrame(True, 0, TEXT, b"Hello", False)]
    hello_masked = bytes([0x81, 0x85, 0x37, 0xFA, 0x21, 0x3D, 0x7F, 0x9F, 0x4D, 0x51, 0x58])
    assert decode_frames(hello_masked, masked=True) == [WireFrame(True, 0, TEXT, b"Hello", True)]
    fragmented = bytes([0x01, 0x03, 0x48, 0x65, 0x6C, 0x80, 0x02, 0x6C, 0x6F])
    assert decode_frames(fragmented, masked=False) == [
        WireFrame(False, 0, TEXT, b"Hel", False),
        WireFrame(True, 0, CONTINUATION, b"lo", False),
    ]
    ping = bytes([0x89, 0x05, 0x48, 0x65, 0x6C, 0x6C, 0x6F])
    pong = bytes([0x8A, 0x85, 0x37, 0xFA, 0x21, 0x3D, 0x7F, 0x9F, 0x4D, 0x51, 0x58])
    assert decode_frames(ping, masked=False) == [WireFrame(True, 0, PING, b"Hello", False)]
    assert decode_frames(pong, masked=True) == [WireFrame(True, 0, PONG, b"Hello", True)]


def test_the_rfc_long_length_examples_decode():
    """256 bytes take a 16-bit length, 64 KiB a 64-bit one (RFC 6455 §5.7), and the payload is all read."""
    medium = bytes([0x82, 0x7E, 0x01, 0x00]) + bytes(range(256))
    assert decode_frames(medium, masked=False) == [WireFrame(True, 0, BINARY, bytes(range(256)), False)]
    large = bytes([0x82, 0x7F, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00]) + b"z" * 65536
    assert decode_frames(large, masked=False)[0].payload == b"z" * 65536


def test_rsv_bits_are_reported_in_their_wire_positions():
    """A frame with RSV1 (a compressed message under RFC 7692) shows rsv == 0x40."""
    assert decode_frames(bytes([0xC1, 0x01, 0x00]), masked=False)[0].rsv == 0x40


@pytest.mark.parametrize(
    ("data", "masked", "complaint"),
    [
        (bytes([0x81]), False, "truncated"),
        (bytes([0x81, 0x05, 0x48]), False, "truncated"),
        (bytes([0x81, 0x05]) + b"Hello", True, "masked=False"),
        (bytes([0x81, 0x7E, 0x00, 0x05]) + b"Hello", False, "minimal"),
        (bytes([0x82, 0x7F, 0, 0, 0, 0, 0, 0, 0x01, 0x00]) + bytes(256), False, "minimal"),
        (bytes([0x82, 0x7F, 0x80, 0, 0, 0, 0, 0, 0, 0]), False, "most significant bit"),
        (bytes([0x09, 0x00]), False, "control frame"),
        (bytes([0x89, 0x7E, 0x00, 0x7E]) + bytes(126), False, "control frame"),
    ],
)
def test_malformed_streams_are_refused(data, masked, complaint):
    """Truncation, a wrong mask bit, non-minimal lengths and bad control frames are reported, not decoded."""
    with pytest.raises(WireError, match=complaint):
        decode_frames(data, masked=masked)
