"""Every size, count and time bound of a WebSocket connection, in one place.

Rules for this file:

* Each bound is a field of :class:`Limits` with its unit in its name, a finite
  default and a docstring-style ``help`` entry in its metadata.
* The field name *is* the configuration key (``[limits]`` table and the
  per-endpoint ``limits`` table), so a limit cannot exist without a key.
* There is no "0 means unlimited": ``minimum``/``maximum`` in the metadata are
  enforced by :meth:`Limits.validate` and by the config loader.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

KIB = 1024
MIB = 1024 * KIB


def limit_field(default: int | float, minimum: int | float, maximum: int | float, help: str) -> Any:
    """Declare one bound with its range and a one-line description (also used by ``wsdaemon.hub``)."""
    return field(default=default, metadata={"minimum": minimum, "maximum": maximum, "help": help})


def validate_fields(limits: Any) -> None:
    """Check every field of a dataclass of :func:`limit_field` bounds against its declared range.

    Raises:
        ValueError: naming the first field out of range or of the wrong type.
    """
    for f in dataclasses.fields(limits):
        name, minimum, maximum = f.name, f.metadata["minimum"], f.metadata["maximum"]
        value = getattr(limits, name)
        allowed = (int,) if isinstance(f.default, int) else (int, float)
        if isinstance(value, bool) or not isinstance(value, allowed):
            # ValueError, like a range error: callers handle one "bad value" exception.
            raise ValueError(f"{name} must be a number of type {type(f.default).__name__}, got {value!r}")
        if not minimum <= value <= maximum:
            raise ValueError(f"{name} must be between {minimum} and {maximum}, got {value!r}")


def field_ranges(limits: Any) -> dict[str, tuple[int | float, int | float]]:
    """Each :func:`limit_field` bound of the dataclass ``limits`` mapped to its inclusive (minimum, maximum)."""
    return {f.name: (f.metadata["minimum"], f.metadata["maximum"]) for f in dataclasses.fields(limits)}


def field_help(limits: Any) -> dict[str, str]:
    """Each :func:`limit_field` bound of the dataclass ``limits`` mapped to its one-line description."""
    return {f.name: f.metadata["help"] for f in dataclasses.fields(limits)}


@dataclass(frozen=True, slots=True)
class Limits:
    """The bounds one connection (or one listener's HTTP side) lives under."""

    max_message_bytes: int = limit_field(
        1 * MIB, 1, 2**40, "largest message accepted, after reassembly (and after inflate); bigger -> close 1009"
    )
    max_frame_bytes: int = limit_field(
        1 * MIB,
        125,
        2**40,
        "largest single frame payload accepted, checked on the declared length; bigger -> close 1009",
    )
    max_fragments: int = limit_field(4096, 1, 2**32, "most frames one message may be split into; more -> close 1009")
    fragment_outgoing_bytes: int = limit_field(
        1 * MIB, 125, 2**40, "outgoing messages larger than this are sent as several frames of this size"
    )
    handshake_timeout_seconds: float = limit_field(
        10.0, 0.1, 3600.0, "time a new or idle-between-requests HTTP connection has to send a complete request head"
    )
    close_timeout_seconds: float = limit_field(
        10.0, 0.1, 3600.0, "time the peer has to answer our close frame before TCP is dropped"
    )
    idle_timeout_seconds: float = limit_field(
        600.0,
        1.0,
        7 * 86400.0,
        "a WebSocket with no message either way for this long is closed with 1001 (pings do not count)",
    )
    ping_interval_seconds: float = limit_field(
        20.0, 1.0, 86400.0, "time between keepalive pings the server sends on a WebSocket (counted from the last pong)"
    )
    pong_timeout_seconds: float = limit_field(
        20.0, 1.0, 3600.0, "time the peer has to answer a keepalive ping; no pong -> close 1011 keepalive timeout"
    )
    write_buffer_high_bytes: int = limit_field(
        256 * KIB,
        1 * KIB,
        2**32,
        "outgoing bytes queued in the transport above which reading and the handler's producer pause; also the read size",
    )
    write_buffer_max_bytes: int = limit_field(
        4 * MIB, 1 * KIB, 2**40, "outgoing bytes queued above which a peer that does not read is closed with 1008"
    )
    send_chunk_bytes: int = limit_field(
        512 * KIB,
        4 * KIB,
        64 * MIB,
        "most bytes handed to one send() call (TCP, under TLS too); larger means fewer system calls for big messages",
    )
    max_connections: int = limit_field(
        10000, 1, 10**7, "open TCP connections per listener; more are refused (closed at accept)"
    )
    max_connections_per_ip: int = limit_field(
        256, 1, 10**7, "open TCP connections from one peer address; a WebSocket upgrade over it gets 503"
    )
    http_max_headers: int = limit_field(100, 1, 10000, "most header lines in one HTTP request head")
    http_max_header_bytes: int = limit_field(
        16 * KIB, 1 * KIB, 1 * MIB, "largest HTTP request head (request line and all header lines) in bytes"
    )
    http_max_body_bytes: int = limit_field(
        64 * KIB,
        1,
        1024 * MIB,
        "largest HTTP request body in bytes (Content-Length, or counted when chunked); bigger -> 413",
    )
    drain_timeout_seconds: float = limit_field(
        10.0, 0.1, 3600.0, "on shutdown, time open WebSockets get to finish their 1001 close handshake"
    )

    def validate(self) -> None:
        """Check every field against its declared range.

        Raises:
            ValueError: naming the first field out of range or of the wrong
                type (a float byte count would break frame splitting).
        """
        validate_fields(self)

    def replace(self, **changes: Any) -> Limits:
        """A copy with some fields changed (for per-endpoint overrides)."""
        return dataclasses.replace(self, **changes)


def limit_ranges() -> dict[str, tuple[int | float, int | float]]:
    """Each limit's name mapped to its inclusive (minimum, maximum)."""
    return field_ranges(Limits)


def limit_help() -> dict[str, str]:
    """Each limit's name mapped to its one-line description."""
    return field_help(Limits)
