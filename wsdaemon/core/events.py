"""What a :class:`~wsdaemon.core.connection.Connection` reports: frozen values, no behaviour."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class TextMessage:
    """A complete text message, already validated and decoded."""

    data: str


@dataclass(frozen=True, slots=True)
class BytesMessage:
    """A complete binary message."""

    data: bytes


@dataclass(frozen=True, slots=True)
class Ping:
    """The peer pinged; the core has already queued the Pong (RFC 6455 §5.5.2)."""

    payload: bytes


@dataclass(frozen=True, slots=True)
class Pong:
    """The peer sent a Pong, solicited or not (RFC 6455 §5.5.3)."""

    payload: bytes


@dataclass(frozen=True, slots=True)
class CloseReceived:
    """The peer sent a Close frame; the core has answered it if it had to."""

    code: int
    reason: str


@dataclass(frozen=True, slots=True)
class ConnectionFailed:
    """The core failed the connection (RFC 6455 §7.1.7) and queued a Close with ``code``."""

    code: int
    reason: str


Event = TextMessage | BytesMessage | Ping | Pong | CloseReceived | ConnectionFailed
