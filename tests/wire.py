"""An independent, minimal WebSocket frame decoder for the tests, written from RFC 6455 §5.2.

Tests decode what the daemon sent with this, not with ``wsdaemon.core.frames``:
a mistake shared by the daemon's serializer and its parser would otherwise pass.
It imports nothing from wsdaemon, and is checked against the RFC's own example
frames (§5.7) in ``tests/test_wire.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

#: RFC 6455 §5.2: opcodes 0x8-0xF are control frames.
_CONTROL = 0x8


class WireError(AssertionError):
    """The bytes are not a well-formed frame stream as RFC 6455 §5.2 defines it."""


@dataclass(frozen=True)
class WireFrame:
    """One frame as it was on the wire.

    Attributes:
        fin: the FIN bit.
        rsv: the three RSV bits in their wire positions (0x40 is RSV1, "compressed" under RFC 7692).
        opcode: the 4-bit opcode.
        payload: the payload, unmasked.
        masked: whether the frame carried a masking key.
    """

    fin: bool
    rsv: int
    opcode: int
    payload: bytes
    masked: bool


def naive_mask(data: bytes, mask: bytes) -> bytes:
    """The obviously-correct byte loop of RFC 6455 §5.3 (masking and unmasking are the same)."""
    return bytes(byte ^ mask[i % 4] for i, byte in enumerate(data))


def decode_frames(data: bytes, *, masked: bool) -> list[WireFrame]:
    """Decode a whole byte stream into frames; every frame must be masked iff ``masked``.

    Raises:
        WireError: a truncated frame, a wrong mask bit, a non-minimal or too large
            length, or a control frame that is fragmented or longer than 125 bytes.
    """
    frames: list[WireFrame] = []
    position = 0
    while position < len(data):
        frame, position = _decode_one(data, position)
        if frame.masked != masked:
            raise WireError(f"frame {len(frames)}: masked={frame.masked}, expected {masked}")
        frames.append(frame)
    return frames


def _take(data: bytes, position: int, count: int) -> bytes:
    if len(data) - position < count:
        raise WireError(f"truncated frame: {count} bytes wanted at offset {position}, {len(data) - position} left")
    return data[position : position + count]


def _decode_one(data: bytes, position: int) -> tuple[WireFrame, int]:
    first, second = _take(data, position, 2)
    position += 2
    length = second & 0x7F
    if length == 126:
        length = int.from_bytes(_take(data, position, 2), "big")
        position += 2
        if length < 126:
            raise WireError(f"length {length} sent in 16 bits: the minimal encoding is required")
    elif length == 127:
        length = int.from_bytes(_take(data, position, 8), "big")
        position += 8
        if length >> 63:
            raise WireError("64-bit length with its most significant bit set")
        if length < 2**16:
            raise WireError(f"length {length} sent in 64 bits: the minimal encoding is required")
    masked = bool(second & 0x80)
    key = b""
    if masked:
        key = _take(data, position, 4)
        position += 4
    payload = _take(data, position, length)
    position += length
    fin, opcode = bool(first & 0x80), first & 0x0F
    if opcode >= _CONTROL and (not fin or length > 125):
        raise WireError(f"control frame {opcode:#x} fragmented or longer than 125 bytes")
    payload = naive_mask(payload, key) if masked else payload
    return WireFrame(fin, first & 0x70, opcode, payload, masked), position
