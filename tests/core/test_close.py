"""Tests for wsdaemon.core.close: close codes and close payloads (RFC 6455 §5.5.1, §7.4)."""

from __future__ import annotations

import pytest

from tests.helpers import close_payload
from wsdaemon.core.close import (
    MAX_REASON_BYTES,
    CloseCode,
    is_valid_close_code,
    parse_close,
    serialize_close,
    truncate_reason,
)
from wsdaemon.core.errors import InvalidUTF8, ProtocolViolation

VALID_CODES = [1000, 1001, 1002, 1003, *range(1007, 1015), 3000, 3999, 4000, 4999]
INVALID_CODES = [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535]


class TestCloseCodes:
    """RFC 6455 §7.4: which status codes may appear in a Close frame."""

    @pytest.mark.parametrize("code", VALID_CODES)
    def test_valid_close_code(self, code: int) -> None:
        """Defined codes 1000-1003, 1007-1014 and the 3000-4999 ranges may be sent."""
        assert is_valid_close_code(code)

    @pytest.mark.parametrize("code", INVALID_CODES)
    def test_invalid_close_code(self, code: int) -> None:
        """Unassigned, reserved and local-only codes (1005, 1006, 1015) may not be sent."""
        assert not is_valid_close_code(code)

    @pytest.mark.parametrize("code", VALID_CODES)
    def test_parse_accepts_valid_code(self, code: int) -> None:
        """A received Close with a valid code reports it."""
        assert parse_close(close_payload(code, b"bye")) == (code, "bye")

    @pytest.mark.parametrize("code", INVALID_CODES)
    def test_parse_rejects_invalid_code(self, code: int) -> None:
        """A received Close with a code not allowed on the wire fails with 1002."""
        with pytest.raises(ProtocolViolation, match="invalid close code") as info:
            parse_close(close_payload(code))
        assert info.value.close_code == CloseCode.PROTOCOL_ERROR

    def test_local_only_codes_are_named(self) -> None:
        """1005, 1006 and 1015 exist as names for local reporting."""
        assert (CloseCode.NO_STATUS_RCVD, CloseCode.ABNORMAL_CLOSURE, CloseCode.TLS_HANDSHAKE) == (1005, 1006, 1015)


class TestClosePayload:
    """RFC 6455 §5.5.1: the Close payload is empty, or a code and a UTF-8 reason."""

    def test_empty_payload_means_no_status(self) -> None:
        """An empty Close reports 1005 with no reason (RFC 6455 §7.1.5)."""
        assert parse_close(b"") == (CloseCode.NO_STATUS_RCVD, "")

    def test_one_byte_payload_is_rejected(self) -> None:
        """A one-byte Close payload cannot hold a code and fails with 1002."""
        with pytest.raises(ProtocolViolation, match="one byte"):
            parse_close(b"\x03")

    def test_invalid_utf8_reason_is_rejected(self) -> None:
        """A reason that is not UTF-8 fails with 1007."""
        with pytest.raises(InvalidUTF8) as info:
            parse_close(close_payload(1000, b"\xff\xfe"))
        assert info.value.close_code == CloseCode.INVALID_DATA

    def test_utf8_reason_is_decoded(self) -> None:
        """A multi-byte reason comes back as text."""
        assert parse_close(close_payload(1001, "über".encode())) == (1001, "über")

    def test_serialize_empty(self) -> None:
        """``None`` serializes to an empty payload."""
        assert serialize_close(None) == b""

    def test_serialize_round_trip(self) -> None:
        """What serialize_close writes, parse_close reads."""
        assert parse_close(serialize_close(CloseCode.GOING_AWAY, "restart")) == (1001, "restart")


class TestReasonTruncation:
    """A reason must fit in the 125-byte control payload, 2 bytes going to the code."""

    def test_short_reason_is_unchanged(self) -> None:
        """A reason of 123 bytes or less is sent as is."""
        assert truncate_reason("r" * MAX_REASON_BYTES) == b"r" * 123

    def test_long_ascii_reason_is_cut_at_123_bytes(self) -> None:
        """An ASCII reason is cut to exactly 123 bytes."""
        assert truncate_reason("r" * 200) == b"r" * 123

    @pytest.mark.parametrize("prefix", [0, 1, 2, 3])
    def test_long_reason_is_cut_on_a_character_boundary(self, prefix: int) -> None:
        """A cut never splits a multi-byte character, so the result stays valid UTF-8."""
        reason = "a" * prefix + "€" * 60  # € is 3 bytes
        data = truncate_reason(reason)
        assert len(data) <= MAX_REASON_BYTES
        assert len(data) > MAX_REASON_BYTES - 3
        assert reason.startswith(data.decode("utf-8"))

    def test_serialized_close_fits_a_control_frame(self) -> None:
        """A Close payload with a long reason is at most 125 bytes."""
        assert len(serialize_close(1000, "😀" * 100)) <= 125
