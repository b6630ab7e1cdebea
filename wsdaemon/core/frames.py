"""WebSocket frames: parsing a byte stream into frames, and writing frames (RFC 6455 §5).

Rules for this file:

* :class:`FrameParser` is incremental: any split of the stream, one byte at a
  time included, yields the same frames.
* Every check the frame header allows (reserved bits, opcode, control-frame rules, masking,
  declared length) is made *before* any payload is buffered: a hostile length costs nothing.
* Data-frame payloads are handed out as they arrive, in chunks, so text can be validated
  while it streams in (Autobahn 6.4.*); control payloads (≤ 125 bytes) are handed out whole.
"""

from __future__ import annotations

import functools
import os
from enum import IntEnum
from typing import NamedTuple

from wsdaemon.core.errors import MessageTooBig, ProtocolViolation
from wsdaemon.core.speedups import apply_mask, unmask_join


class Opcode(IntEnum):
    """Frame opcodes (RFC 6455 §5.2); 0x3-0x7 and 0xB-0xF are reserved."""

    CONTINUATION = 0x0
    TEXT = 0x1
    BINARY = 0x2
    CLOSE = 0x8
    PING = 0x9
    PONG = 0xA


_KNOWN_OPCODES = frozenset(int(op) for op in Opcode)

RSV1 = 0x40
RSV2 = 0x20
RSV3 = 0x10

#: Payloads at least this long are written as a separate chunk instead of being
#: copied behind their header.
_SEPARATE_PAYLOAD_BYTES = 16 * 1024


class FrameHeader(NamedTuple):
    """One frame's header, as declared on the wire."""

    fin: bool
    rsv: int  # the RSV1|RSV2|RSV3 bits, in their wire positions
    opcode: int
    length: int
    mask: bytes | None

    @property
    def is_control(self) -> bool:
        """Control frames (opcode ≥ 0x8) are never fragmented (RFC 6455 §5.5)."""
        return self.opcode >= 0x8


class FrameChunk(NamedTuple):
    """A piece of one frame's payload, unmasked, as it arrived.

    ``first`` marks the chunk that starts a frame (where per-frame checks go), ``last`` the
    chunk that ends it; a frame small enough to arrive at once is a single chunk with both set.
    A data frame whose header arrives before any of its payload starts with an empty ``first``
    chunk, so the per-frame checks run on the declared length alone. A whole binary message in
    one frame (FIN, no RSV bits) that arrives in pieces comes as that empty first chunk and then
    one last chunk with the whole payload: unmasked once, not piece by piece and then joined.
    """

    header: FrameHeader
    payload: bytes
    first: bool
    last: bool


def _rotate(mask: bytes, offset: int) -> bytes:
    """The mask as seen from ``offset`` bytes into a payload."""
    shift = offset & 3
    return mask[shift:] + mask[:shift] if shift else mask


class FrameParser:
    """Turns a byte stream into :class:`FrameChunk` items.

    Args:
        expect_masked: True on the server side (client frames MUST be masked,
            RFC 6455 §5.1), False on the client side (server frames MUST NOT).
        max_frame_bytes: largest payload accepted, checked on the header.
        allowed_rsv: reserved bits an extension negotiated (RFC 6455 §5.2).
    """

    __slots__ = (
        "_buf",
        "_first_byte_errors",
        "_header",
        "_offset",
        "_pieces",
        "_pos",
        "_remaining",
        "_started",
        "allowed_rsv",
        "expect_masked",
        "max_frame_bytes",
    )

    def __init__(self, *, expect_masked: bool, max_frame_bytes: int, allowed_rsv: int = 0) -> None:
        self._buf = b""
        self._pos = 0
        self._header: FrameHeader | None = None
        self._remaining = 0
        self._offset = 0
        self._started = False  # whether the current frame's first chunk was handed out
        self._pieces: list[bytes | memoryview] | None = None  # a whole binary message being collected
        self.expect_masked = expect_masked
        self.max_frame_bytes = max_frame_bytes
        self.allowed_rsv = allowed_rsv
        self._first_byte_errors = first_byte_errors(allowed_rsv)

    def feed(self, data: bytes) -> None:
        """Add bytes received from the peer."""
        if self._pos >= len(self._buf):
            self._buf = bytes(data)
        else:
            self._buf = self._buf[self._pos :] + data
        self._pos = 0

    def buffered(self) -> int:
        """Bytes received but not yet handed out."""
        return len(self._buf) - self._pos

    def next_small_frame(self) -> tuple[int, bytes] | None:
        """The fast path: a whole small unfragmented text or binary frame at the head of the buffer.

        Returns ``(opcode, unmasked payload)`` only when the buffer starts with
        a complete frame that every check of :meth:`next_chunk` would pass:
        FIN set, no RSV bits (so not compressed, even with permessage-deflate),
        opcode 0x1 or 0x2, the expected mask bit, a 7-bit length. Anything else (including a frame still arriving) returns
        None and leaves the buffer for :meth:`next_chunk`, which gives the same
        result for such a frame, only slower.
        """
        if self._header is not None:
            return None
        buf, pos = self._buf, self._pos
        available = len(buf) - pos
        if available < 2:
            return None
        b0, b1 = buf[pos], buf[pos + 1]
        if b0 != 0x81 and b0 != 0x82:
            return None
        if self.expect_masked:
            length = b1 - 0x80
            if not 0 <= length < 126 or available < 6 + length:
                return None
            end = pos + 6 + length
            self._pos = end
            return b0 & 0x0F, apply_mask(buf[pos + 6 : end], buf[pos + 2 : pos + 6])
        if b1 >= 126 or available < 2 + b1:
            return None
        end = pos + 2 + b1
        self._pos = end
        return b0 & 0x0F, buf[pos + 2 : end]

    def next_chunk(self) -> FrameChunk | None:
        """The next piece of payload, or None until more bytes arrive.

        Raises:
            ProtocolViolation: the header breaks a framing rule.
            MessageTooBig: the declared length is over ``max_frame_bytes``.
        """
        header = self._header
        if header is None:
            if len(self._buf) - self._pos < 2:
                return None
            header = self._parse_header()
            if header is None:
                return None
        available = len(self._buf) - self._pos
        remaining = self._remaining
        if self._pieces is not None:
            return self._collect(header, min(available, remaining))
        if available >= remaining:
            take = remaining
        elif header.opcode >= 0x8 or (available == 0 and self._started):
            return None
        elif header.opcode == Opcode.BINARY and header.fin and not header.rsv:
            # A whole uncompressed binary message in one frame, arriving in
            # pieces: the caller gets the header now (for its checks) and the
            # payload once it is complete, unmasked in one pass with no join.
            self._pieces = []
            self._started = True
            return FrameChunk(header, b"", True, False)
        else:
            # A data frame's first chunk goes out as soon as its header is
            # complete, even with no payload yet, so the caller's per-frame
            # checks (message size, continuation order) run before any payload.
            take = available
        first = not self._started
        start = self._pos
        payload = self._buf[start : start + take]
        self._pos = start + take
        if header.mask is not None:
            payload = apply_mask(payload, _rotate(header.mask, self._offset) if self._offset else header.mask)
        remaining -= take
        self._remaining = remaining
        if remaining:
            self._started = True
            self._offset += take
            return FrameChunk(header, payload, first, False)
        self._header = None
        self._offset = 0
        self._started = False
        return FrameChunk(header, payload, first, True)

    def _collect(self, header: FrameHeader, take: int) -> FrameChunk | None:
        """Keep a piece of a collected binary frame (a view: no copy); the payload once complete."""
        pieces = self._pieces
        assert pieces is not None
        if take:
            start = self._pos
            buf = self._buf
            pieces.append(buf if start == 0 and take == len(buf) else memoryview(buf)[start : start + take])
            self._pos = start + take
            self._remaining -= take
        if self._remaining:
            return None
        self._pieces = None
        self._header = None
        self._started = False
        payload = unmask_join(pieces, header.mask) if header.mask is not None else b"".join(pieces)
        return FrameChunk(header, payload, False, True)

    def _parse_header(self) -> FrameHeader | None:
        """Read and check a frame header, or return None if it is incomplete.

        The checks on the first two bytes run as soon as those arrive, before
        the extended length or the mask key.
        """
        buf, pos = self._buf, self._pos
        b0, b1 = buf[pos], buf[pos + 1]
        error = self._first_byte_errors[b0]
        if error is not None:
            raise ProtocolViolation(error)
        length = b1 & 0x7F
        masked = b1 >= 0x80
        if masked is not self.expect_masked:
            raise ProtocolViolation(
                "client frames must be masked" if self.expect_masked else "server frames must not be masked"
            )
        if length > 125 and b0 & 0x08:
            raise ProtocolViolation("control frame payload over 125 bytes")
        cursor = pos + 2
        if length >= 126:
            size = 2 if length == 126 else 8
            if len(buf) - cursor < size:
                return None
            length = int.from_bytes(buf[cursor : cursor + size], "big")
            if length >> 63:
                raise ProtocolViolation("64-bit frame length with the high bit set")
            cursor += size
        if length > self.max_frame_bytes:
            raise MessageTooBig(f"frame of {length} bytes is over the limit of {self.max_frame_bytes}")
        mask = None
        if masked:
            if len(buf) - cursor < 4:
                return None
            mask = buf[cursor : cursor + 4]
            cursor += 4
        header = FrameHeader(b0 >= 0x80, b0 & 0x70, b0 & 0x0F, length, mask)
        self._header = header
        self._remaining = length
        self._offset = 0
        self._started = False
        self._pos = cursor
        return header


@functools.lru_cache(maxsize=8)
def first_byte_errors(allowed_rsv: int) -> tuple[str | None, ...]:
    """For each possible first header byte, the framing rule it breaks (or None).

    Opcode, reserved bits and control-frame fragmentation depend on the first
    byte alone, so they are decided once (and the table is shared by every
    parser with the same extension), not once per frame.
    """
    errors: list[str | None] = []
    for b0 in range(256):
        opcode = b0 & 0x0F
        if opcode not in _KNOWN_OPCODES:
            errors.append(f"reserved opcode {opcode:#x}")
        elif b0 & 0x70 & ~allowed_rsv:
            errors.append("reserved bits set without a negotiated extension")
        elif b0 & 0x70 and (opcode == 0 or opcode >= 0x8):
            # RFC 7692 §6.1: only the first frame of a data message carries RSV1.
            errors.append("reserved bits set on a control or continuation frame")
        elif opcode >= 0x8 and not b0 & 0x80:
            errors.append("fragmented control frame")
        else:
            errors.append(None)
    return tuple(errors)


#: The two header bytes of every small unmasked data frame (FIN, any RSV bits, text or
#: binary, a 7-bit length), made once: the server's most common frame, written without a
#: call to :func:`serialize_frame`.
SMALL_FRAME_HEADS = {
    b0: tuple(bytes((b0, length)) for length in range(126))
    for b0 in (0x80 | rsv | opcode for rsv in range(0, 0x80, 0x10) for opcode in (Opcode.TEXT, Opcode.BINARY))
}


def serialize_frame(
    opcode: int,
    payload: bytes,
    *,
    fin: bool = True,
    rsv: int = 0,
    mask: bool = False,
) -> list[bytes]:
    """Encode one frame as one or two byte strings (header and payload).

    Small frames come back as a single string, so the caller can make one
    ``write`` per frame; large payloads are not copied behind their header.
    Clients set ``mask`` (RFC 6455 §5.3: a fresh unpredictable key per frame).
    """
    length = len(payload)
    b0 = (0x80 if fin else 0) | rsv | opcode
    mask_bit = 0x80 if mask else 0
    if length < 126:
        head = bytes((b0, mask_bit | length))
    elif length < 65536:
        head = bytes((b0, mask_bit | 126)) + length.to_bytes(2, "big")
    else:
        head = bytes((b0, mask_bit | 127)) + length.to_bytes(8, "big")
    if mask:
        key = os.urandom(4)
        head += key
        payload = apply_mask(payload, key)
    if length >= _SEPARATE_PAYLOAD_BYTES:
        return [head, payload]
    return [head + payload]


def encode_message(
    opcode: int, payload: bytes, fragment_bytes: int, *, rsv: int = 0, mask: bool = False
) -> list[bytes]:
    """A whole message as frames, split every ``fragment_bytes`` (RFC 6455 §5.4).

    The one outgoing fragmenter: a connection's own messages and shared ones
    (:class:`SharedMessage`) are both framed here. The first frame carries the
    opcode and ``rsv`` (RFC 7692 §6.1: RSV1 only on the first frame of a
    compressed message), the others are continuations, the last has FIN.
    Unmasked, the bytes depend only on the arguments, so one encoding can be
    written to many server connections (RFC 6455 §5.1: servers never mask).
    """
    if len(payload) <= fragment_bytes:
        return serialize_frame(opcode, payload, rsv=rsv, mask=mask)
    frames: list[bytes] = []
    view = memoryview(payload)
    for start in range(0, len(payload), fragment_bytes):
        first = start == 0
        frames += serialize_frame(
            opcode if first else Opcode.CONTINUATION,
            bytes(view[start : start + fragment_bytes]),
            fin=start + fragment_bytes >= len(payload),
            rsv=rsv if first else 0,
            mask=mask,
        )
    return frames


class SharedMessage:
    """One outgoing message meant for many server connections (a broadcast, a replay).

    It is framed once per fragment size, on first use, and every connection that can writes
    those same bytes (:func:`encode_message`); each decides for itself
    (:meth:`~wsdaemon.core.connection.Connection.send_shared`). One with permessage-deflate
    (RFC 7692 §6: its own compression context) or a client (RFC 6455 §5.3: a fresh mask per
    frame) encodes ``payload`` itself. The peer gets the same message either way.

    Args:
        opcode: ``Opcode.TEXT`` (``payload`` is UTF-8) or ``Opcode.BINARY``.
        payload: the message.
    """

    __slots__ = ("_cache", "opcode", "payload")

    def __init__(self, opcode: Opcode, payload: bytes) -> None:
        self.opcode = opcode
        self.payload = payload
        self._cache: tuple[int, list[bytes]] | None = None

    def frames(self, fragment_bytes: int) -> list[bytes]:
        """The frames to write, encoded at the first call for ``fragment_bytes`` and reused after."""
        cache = self._cache
        if cache is None or cache[0] != fragment_bytes:
            cache = self._cache = (fragment_bytes, encode_message(self.opcode, self.payload, fragment_bytes))
        return cache[1]
