"""The bytes of one message between processes (a Redis PUBLISH payload, a relay frame).

Rules for this file:

* The first byte says what follows; everything after the header is the message,
  byte for byte, so text and binary survive unchanged and nothing is escaped:

  ============  ===============================================================
  first byte    rest
  ============  ===============================================================
  ``t``         a text message (UTF-8): what a backend writes with ``redis-cli``
  ``b``         a binary message
  ``T`` / ``B`` text / binary from a wsdaemon process: 8 bytes naming the
                process (its origin), 8 bytes of its publish sequence number
                (big-endian), then the message
  ``P`` / ``Q`` text / binary with a position (a publish on a channel with
                history): the same 16-byte origin and sequence, then the
                channel's epoch, a space, the offset in decimal, a space,
                then the message
  ============  ===============================================================

* The position is text so that the Redis script that assigns it (see
  :mod:`wsdaemon.broker.redis`) can write it by concatenation: the header is
  :func:`positioned_header`, and the script appends ``EPOCH OFFSET `` and the
  message. Epochs have no space (see :func:`~wsdaemon.hub.is_epoch`).
* Unpositioned payloads are unchanged, so backends and older daemons keep
  working; a positioned one is ``P``/``Q`` only, which an older daemon counts
  as malformed rather than delivering without its position.

* The origin lets a process recognise its own messages when they come back, so
  it gives them to its members exactly once (see :mod:`wsdaemon.broker.linked`).
* Decoding judges bytes from strangers (anyone who can PUBLISH): every problem is
  a :class:`MalformedPayload`, never anything else, and text must be valid UTF-8.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from wsdaemon.core.frames import Opcode
from wsdaemon.hub import MAX_EPOCH_CHARS, MAX_OFFSET, is_epoch

#: Bytes of a wsdaemon process's origin name in a payload.
ORIGIN_BYTES = 8
_HEADER = struct.Struct(f"!c{ORIGIN_BYTES}sQ")
#: Bytes of the header of a payload from a wsdaemon process (kind, origin, sequence).
HEADER_BYTES = _HEADER.size
#: Most bytes a position adds to a payload: the epoch, the offset's 16 digits and two spaces.
POSITION_MAX_BYTES = MAX_EPOCH_CHARS + len(str(MAX_OFFSET)) + 2
_KINDS = {
    b"t": Opcode.TEXT,
    b"b": Opcode.BINARY,
    b"T": Opcode.TEXT,
    b"B": Opcode.BINARY,
    b"P": Opcode.TEXT,
    b"Q": Opcode.BINARY,
}
_MAX_OFFSET_DIGITS = len(str(MAX_OFFSET))


class MalformedPayload(ValueError):
    """Bytes received from the broker that are not a message (logged and dropped)."""


@dataclass(frozen=True, slots=True)
class Envelope:
    """One decoded payload: the message, who published it (``origin`` empty when not a wsdaemon), and where.

    ``epoch`` and ``offset`` are the message's position, for a positioned publish (else ``None``).
    """

    opcode: Opcode
    data: bytes
    origin: bytes = b""
    sequence: int = 0
    epoch: str | None = None
    offset: int | None = None


def encode(opcode: Opcode, data: bytes, origin: bytes, sequence: int) -> bytes:
    """A payload from a wsdaemon process (``origin`` is :data:`ORIGIN_BYTES` long)."""
    kind = b"T" if opcode == Opcode.TEXT else b"B"
    return _HEADER.pack(kind, origin, sequence) + data


def positioned_header(opcode: Opcode, origin: bytes, sequence: int) -> bytes:
    """The start of a positioned payload: what comes before ``EPOCH OFFSET `` and the message."""
    return _HEADER.pack(b"P" if opcode == Opcode.TEXT else b"Q", origin, sequence)


def header_opcode(header: bytes) -> Opcode:
    """Whether a :func:`positioned_header` starts a text or a binary message."""
    return Opcode.TEXT if header[:1] == b"P" else Opcode.BINARY


def encode_positioned(opcode: Opcode, data: bytes, origin: bytes, sequence: int, epoch: str, offset: int) -> bytes:
    """A positioned payload, whole (the Redis script builds the same bytes itself)."""
    return b"%s%s %d %s" % (positioned_header(opcode, origin, sequence), epoch.encode("ascii"), offset, data)


def encode_plain(opcode: Opcode, data: bytes) -> bytes:
    """A payload without an origin, as a backend writes it (``t...`` or ``b...``)."""
    return (b"t" if opcode == Opcode.TEXT else b"b") + data


def decode(payload: bytes) -> Envelope:
    """Read one payload.

    Raises:
        MalformedPayload: empty, an unknown first byte, a short header, or text that is not UTF-8.
    """
    kind = payload[:1]
    opcode = _KINDS.get(kind)
    if opcode is None:
        shown = repr(kind) if kind else "nothing"
        raise MalformedPayload(f"a payload starts with t (text) or b (binary), got {shown}")
    if kind in (b"t", b"b"):
        envelope = Envelope(opcode, payload[1:])
    elif len(payload) < _HEADER.size:
        raise MalformedPayload(f"a {kind.decode()} payload has a {_HEADER.size}-byte header, got {len(payload)} bytes")
    elif kind in (b"T", b"B"):
        _, origin, sequence = _HEADER.unpack_from(payload)
        envelope = Envelope(opcode, payload[_HEADER.size :], origin, sequence)
    else:
        _, origin, sequence = _HEADER.unpack_from(payload)
        epoch, offset, start = _position(payload, _HEADER.size)
        envelope = Envelope(opcode, payload[start:], origin, sequence, epoch, offset)
    if opcode == Opcode.TEXT:
        try:
            envelope.data.decode("utf-8")
        except UnicodeDecodeError as error:
            raise MalformedPayload(f"a text payload is not UTF-8 (at byte {error.start})") from None
    return envelope


def _position(payload: bytes, start: int) -> tuple[str, int, int]:
    """The ``EPOCH OFFSET `` at ``start``: the epoch, the offset and where the message begins.

    Raises:
        MalformedPayload: no well-formed epoch or offset there.
    """
    epoch_end = payload.find(b" ", start, start + MAX_EPOCH_CHARS + 1)
    epoch = payload[start:epoch_end].decode("ascii", "replace") if epoch_end > 0 else ""
    if not is_epoch(epoch):
        raise MalformedPayload("a positioned payload has no well-formed epoch after its header")
    offset_end = payload.find(b" ", epoch_end + 1, epoch_end + 2 + _MAX_OFFSET_DIGITS)
    digits = payload[epoch_end + 1 : offset_end] if offset_end > 0 else b""
    if not digits.isdigit() or not 1 <= int(digits) <= MAX_OFFSET:
        raise MalformedPayload("a positioned payload has no offset from 1 to 2**53-1 after its epoch")
    return epoch, int(digits), offset_end + 1
