"""Incremental UTF-8 validation of text messages (RFC 6455 §8.1).

A text message may arrive in many frames and each frame in many TCP reads. The
validator is fed every piece as it arrives, so invalid bytes fail the
connection with 1007 inside the offending piece, not at the end of the message.

Validation is a state machine over the well-formed byte sequences of Unicode
Table 3-7 (``speedups.utf8_validate``, in C when the accelerator is built):
it rejects at the first byte that cannot continue a character (overlong forms,
surrogates and code points above U+10FFFF included), which is what the
Autobahn "fail fast" cases (6.4.*) check. The bytes are decoded once, when the
message is complete.
"""

from __future__ import annotations

from wsdaemon.core.errors import InvalidUTF8
from wsdaemon.core.speedups import UTF8_ACCEPT, UTF8_REJECT, utf8_validate

_INVALID = "text message is not valid UTF-8"
_TRUNCATED = "text message ends inside a UTF-8 sequence"


class Utf8Validator:
    """Checks a text message piece by piece, failing on the first bad piece."""

    __slots__ = ("_parts", "_state")

    def __init__(self) -> None:
        self._state = UTF8_ACCEPT
        self._parts: list[bytes] = []

    def feed(self, data: bytes) -> None:
        """Validate and keep the next piece of the message.

        Raises:
            InvalidUTF8: ``data`` makes the message invalid.
        """
        state = utf8_validate(self._state, data)
        if state == UTF8_REJECT:
            raise InvalidUTF8(_INVALID)
        self._state = state
        self._parts.append(data)

    def finish(self) -> str:
        """Close the message and return its text.

        Raises:
            InvalidUTF8: the message ends inside a multi-byte character.
        """
        parts, self._parts = self._parts, []
        state, self._state = self._state, UTF8_ACCEPT
        if state != UTF8_ACCEPT:
            raise InvalidUTF8(_TRUNCATED)
        return b"".join(parts).decode("utf-8")


def decode_text(data: bytes) -> str:
    """Decode a complete single-frame text message (the fast path).

    Raises:
        InvalidUTF8: ``data`` is not valid UTF-8.
    """
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        # Same words as the incremental path, so the close reason does not
        # depend on how the message was split.
        truncated = error.reason == "unexpected end of data"
        raise InvalidUTF8(_TRUNCATED if truncated else _INVALID) from None
