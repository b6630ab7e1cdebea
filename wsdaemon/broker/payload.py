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
  ============  ===============================================================

* The origin lets a process recognise its own messages when they come back, so
  it gives them to its members exactly once (see :mod:`wsdaemon.broker.linked`).
* Decoding judges bytes from strangers (anyone who can PUBLISH): every problem is
  a :class:`MalformedPayload`, never anything else, and text must be valid UTF-8.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from wsdaemon.core.frames import Opcode

#: Bytes of a wsdaemon process's origin name in a payload.
ORIGIN_BYTES = 8
_HEADER = struct.Struct(f"!c{ORIGIN_BYTES}sQ")
_KINDS = {b"t": Opcode.TEXT, b"b": Opcode.BINARY, b"T": Opcode.TEXT, b"B": Opcode.BINARY}


class MalformedPayload(ValueError):
    """Bytes received from the broker that are not a message (logged and dropped)."""


@dataclass(frozen=True, slots=True)
class Envelope:
    """One decoded payload: the message, and who published it (``origin`` empty when not a wsdaemon)."""

    opcode: Opcode
    data: bytes
    origin: bytes = b""
    sequence: int = 0


def encode(opcode: Opcode, data: bytes, origin: bytes, sequence: int) -> bytes:
    """A payload from a wsdaemon process (``origin`` is :data:`ORIGIN_BYTES` long)."""
    kind = b"T" if opcode == Opcode.TEXT else b"B"
    return _HEADER.pack(kind, origin, sequence) + data


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
    else:
        _, origin, sequence = _HEADER.unpack_from(payload)
        envelope = Envelope(opcode, payload[_HEADER.size :], origin, sequence)
    if opcode == Opcode.TEXT:
        try:
            envelope.data.decode("utf-8")
        except UnicodeDecodeError as error:
            raise MalformedPayload(f"a text payload is not UTF-8 (at byte {error.start})") from None
    return envelope
