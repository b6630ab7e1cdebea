"""Shared test helpers: frame builders and a stream feeder that runs every stream two ways.

What the daemon sends is decoded by :mod:`tests.wire`, the tests' own decoder,
never by the production ``FrameParser`` it would be checking.

Tier 1 rule (DESIGN §2.6): every stream test is run whole *and* one byte at a
time. :func:`feed` does both and checks that they agree, so a test only states
what the result must be.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable

from tests.wire import decode_frames, naive_mask
from wsdaemon.core.connection import EOF, Connection
from wsdaemon.core.events import Event
from wsdaemon.core.frames import Opcode, apply_mask
from wsdaemon.core.limits import Limits
from wsdaemon.core.states import Side

#: A fixed, non-trivial masking key, so expected bytes are reproducible.
MASK = b"\x37\xfa\x21\x3d"


def frame(
    opcode: int,
    payload: bytes = b"",
    *,
    fin: bool = True,
    rsv: int = 0,
    mask: bytes | None = None,
    length: int | None = None,
) -> bytes:
    """Build one frame by hand, independently of ``serialize_frame``.

    Args:
        opcode: the 4-bit opcode, reserved ones included.
        payload: the unmasked payload.
        fin: the FIN bit.
        rsv: the RSV bits in their wire positions (0x40, 0x20, 0x10).
        mask: a 4-byte masking key, or None for an unmasked frame.
        length: the declared length, when a test wants it to lie.
    """
    declared = len(payload) if length is None else length
    head = bytearray([(0x80 if fin else 0) | rsv | opcode])
    mask_bit = 0x80 if mask is not None else 0
    if declared < 126:
        head.append(mask_bit | declared)
    elif declared < 2**16:
        head.append(mask_bit | 126)
        head += struct.pack("!H", declared)
    else:
        head.append(mask_bit | 127)
        head += struct.pack("!Q", declared)
    if mask is not None:
        head += mask
        payload = naive_mask(payload, mask)
    return bytes(head) + payload


def client_frame(opcode: int, payload: bytes = b"", **kwargs: object) -> bytes:
    """A frame as a client sends it: masked (RFC 6455 §5.3)."""
    kwargs.setdefault("mask", MASK)
    return frame(opcode, payload, **kwargs)  # type: ignore[arg-type]


def server_frame(opcode: int, payload: bytes = b"", **kwargs: object) -> bytes:
    """A frame as a server sends it: unmasked (RFC 6455 §5.1)."""
    return frame(opcode, payload, **kwargs)  # type: ignore[arg-type]


def close_payload(code: int, reason: bytes = b"") -> bytes:
    """A close frame payload: the code in network order, then the reason."""
    return struct.pack("!H", code) + reason


def parse_frames(data: bytes, *, masked: bool) -> list[tuple[bool, int, bytes]]:
    """Decode a byte stream into (fin, opcode, unmasked payload) triples, with the tests' own decoder.

    Raises:
        tests.wire.WireError: the stream is not well-formed frames (a truncated
            last frame included), or a frame's mask bit is not ``masked``.
    """
    return [(item.fin, item.opcode, item.payload) for item in decode_frames(data, masked=masked)]


def output_frames(output: list[bytes], side: Side) -> tuple[list[tuple[bool, int, bytes]], bool]:
    """Split a connection's output into its frames and whether it ended with EOF.

    EOF must be the last item if present: nothing may be written after "close TCP".
    """
    eof = bool(output) and output[-1] == EOF
    body = output[:-1] if eof else output
    assert EOF not in body, "bytes queued after EOF"
    return parse_frames(b"".join(body), masked=side is Side.CLIENT), eof


def _run(conn: Connection, pieces: Iterable[bytes], eof: bool) -> tuple[list[Event], list[bytes]]:
    events: list[Event] = []
    output: list[bytes] = []
    for piece in pieces:
        conn.receive_data(piece)
        events += conn.events_received()
        output += conn.data_to_send()
    if eof:
        conn.receive_eof()
        events += conn.events_received()
        output += conn.data_to_send()
    return events, output


def feed(
    data: bytes,
    side: Side = Side.SERVER,
    limits: Limits | None = None,
    *,
    eof: bool = False,
    make: Callable[[], Connection] | None = None,
) -> tuple[list[Event], list[bytes], Connection]:
    """Feed ``data`` to a fresh connection whole and one byte at a time; both must agree.

    ``make`` builds each fresh connection (e.g. with an extension); by default
    ``Connection(side, limits)``.

    Returns:
        The events, the output (``EOF`` items kept, the rest joined per
        ``data_to_send`` call as written) and the connection fed whole. On the
        client side, output frames are compared after unmasking, since each
        frame gets a fresh random key.
    """
    make = make or (lambda: Connection(side, limits))
    whole = make()
    events, output = _run(whole, [data], eof)
    bytewise = make()
    events_1, output_1 = _run(bytewise, [data[i : i + 1] for i in range(len(data))], eof)
    assert events_1 == events, "byte-at-a-time events differ from whole-stream events"
    if side is Side.SERVER:
        assert b"".join(output_1) == b"".join(output), "byte-at-a-time output differs"
    assert output_frames(output_1, side) == output_frames(output, side), "byte-at-a-time output frames differ"
    assert (bytewise.state, bytewise.close_code, bytewise.close_reason) == (
        whole.state,
        whole.close_code,
        whole.close_reason,
    ), "byte-at-a-time end state differs"
    return events, output, whole


def feed_frames(
    *frames: bytes, side: Side = Side.SERVER, limits: Limits | None = None, eof: bool = False
) -> tuple[list[Event], list[tuple[bool, int, bytes]], bool, Connection]:
    """Like :func:`feed` for several frames; returns events, output frames, EOF flag, connection."""
    events, output, conn = feed(b"".join(frames), side, limits, eof=eof)
    out_frames, out_eof = output_frames(output, side)
    return events, out_frames, out_eof, conn


__all__ = [
    "MASK",
    "Opcode",
    "apply_mask",
    "client_frame",
    "close_payload",
    "feed",
    "feed_frames",
    "frame",
    "naive_mask",
    "output_frames",
    "parse_frames",
    "server_frame",
]
