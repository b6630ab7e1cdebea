"""Close-frame payloads and which close codes may go on the wire (RFC 6455 §5.5.1, §7.4).

:class:`~wsdaemon.core.errors.CloseCode` is defined in ``errors.py``, next to
the table that gives each failure its code, and re-exported here.
"""

from __future__ import annotations

from wsdaemon.core.errors import CloseCode, InvalidUTF8, ProtocolViolation

__all__ = [
    "MAX_REASON_BYTES",
    "CloseCode",
    "is_valid_close_code",
    "parse_close",
    "serialize_close",
    "truncate_reason",
]


#: Codes below 3000 that an endpoint may put in a close frame.
_SENDABLE_RESERVED = frozenset({1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014})

#: Longest close reason in bytes: a control payload is at most 125 bytes, 2 go to the code.
MAX_REASON_BYTES = 123


def is_valid_close_code(code: int) -> bool:
    """Whether ``code`` may appear in a close frame (RFC 6455 §7.4.2).

    1005, 1006 and 1015 are for local reporting only, 1016-2999 are reserved
    for future RFCs, 3000-3999 are registered by libraries and 4000-4999 are
    private use.
    """
    return code in _SENDABLE_RESERVED or 3000 <= code <= 4999


def truncate_reason(reason: str) -> bytes:
    """Encode ``reason``, cut to fit a control frame on a UTF-8 character boundary."""
    data = reason.encode("utf-8")
    if len(data) <= MAX_REASON_BYTES:
        return data
    return data[:MAX_REASON_BYTES].decode("utf-8", "ignore").encode("utf-8")


def serialize_close(code: int | None, reason: str = "") -> bytes:
    """The payload of a close frame; ``None`` means an empty payload (no status)."""
    if code is None:
        return b""
    return code.to_bytes(2, "big") + truncate_reason(reason)


def parse_close(payload: bytes) -> tuple[int, str]:
    """Decode a received close payload into (code, reason).

    An empty payload means "no status code" and reports 1005 (RFC 6455 §7.1.5).

    Raises:
        ProtocolViolation: a one-byte payload or a code not allowed on the wire.
        InvalidUTF8: the reason is not valid UTF-8.
    """
    if not payload:
        return CloseCode.NO_STATUS_RCVD, ""
    if len(payload) == 1:
        raise ProtocolViolation("close frame payload of one byte")
    code = int.from_bytes(payload[:2], "big")
    if not is_valid_close_code(code):
        raise ProtocolViolation(f"invalid close code {code}")
    try:
        reason = payload[2:].decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidUTF8("close reason is not valid UTF-8") from None
    return code, reason
