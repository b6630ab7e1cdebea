"""Tests for wsdaemon.core.utf8: incremental validation of text messages (RFC 6455 §8.1)."""

from __future__ import annotations

from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wsdaemon.core.close import CloseCode
from wsdaemon.core.errors import InvalidUTF8
from wsdaemon.core.utf8 import Utf8Validator, decode_text

VALID_PREFIX = "κόσμε".encode()

#: (bad sequence, index of the first byte after which it can no longer be valid)
FAIL_FAST = [
    (b"\xf4\x90\x80\x80", 1),  # above U+10FFFF
    (b"\xc0\xaf", 0),  # overlong "/"
    (b"\xed\xa0\x80", 1),  # UTF-16 surrogate U+D800
    (b"\xed\xbf\xbf", 1),  # UTF-16 surrogate U+DFFF
    (b"\xe0\x80\xaf", 1),  # overlong 3-byte
    (b"\xf0\x80\x80\xaf", 1),  # overlong 4-byte
    (b"\xf5", 0),  # never a lead byte
    (b"\xff", 0),
    (b"\x80", 0),  # stray continuation byte
]


def validate_bytewise(data: bytes) -> str:
    """Feed ``data`` one byte at a time and finish; return the text or the error message."""
    validator = Utf8Validator()
    try:
        for i in range(len(data)):
            validator.feed(data[i : i + 1])
        return validator.finish()
    except InvalidUTF8 as error:
        return f"error: {error}"


def decode_whole(data: bytes) -> str:
    """Decode ``data`` on the fast path; return the text or the error message."""
    try:
        return decode_text(data)
    except InvalidUTF8 as error:
        return f"error: {error}"


class TestFailFast:
    """Invalid bytes fail in the piece that holds them, not at the end of the message."""

    @pytest.mark.parametrize(("bad", "fail_at"), FAIL_FAST)
    def test_fails_at_the_first_impossible_byte(self, bad: bytes, fail_at: int) -> None:
        """Fed byte by byte, validation fails exactly at the byte that rules out every valid character."""
        validator = Utf8Validator()
        validator.feed(VALID_PREFIX)
        for i in range(fail_at):
            validator.feed(bad[i : i + 1])
        with pytest.raises(InvalidUTF8) as info:
            validator.feed(bad[fail_at : fail_at + 1])
        assert info.value.close_code == CloseCode.INVALID_DATA

    @pytest.mark.parametrize(("bad", "fail_at"), FAIL_FAST)
    def test_fails_inside_the_fragment_holding_the_bad_bytes(self, bad: bytes, fail_at: int) -> None:
        """Autobahn 6.4.*: a valid fragment passes, the one carrying the bad bytes fails, the rest never matters."""
        validator = Utf8Validator()
        validator.feed(VALID_PREFIX)
        with pytest.raises(InvalidUTF8):
            validator.feed(bad + b"edited")

    def test_message_ending_mid_sequence_fails_at_finish(self) -> None:
        """A message whose last character is cut off passes every feed and fails at finish."""
        validator = Utf8Validator()
        validator.feed(VALID_PREFIX)
        validator.feed("€".encode()[:2])
        with pytest.raises(InvalidUTF8, match="ends inside"):
            validator.finish()

    def test_every_proper_prefix_of_a_character_waits_for_more(self) -> None:
        """A valid but incomplete character is not an error until the message ends."""
        for char in ["é", "€", "😀", "\U0010ffff", "\ud7ff", "\ue000"]:
            encoded = char.encode()
            for cut in range(1, len(encoded)):
                validator = Utf8Validator()
                validator.feed(encoded[:cut])
                validator.feed(encoded[cut:])
                assert validator.finish() == char


class TestValidText:
    """Valid text is accepted at any split and decoded once."""

    TEXT = "Hello-µ@ßöäüàá-UTF-8!! κόσμε € 😀 \U0010ffff"

    def test_valid_text_split_at_every_point_succeeds(self) -> None:
        """Every two-way split of valid multi-byte text validates and decodes to the same text."""
        data = self.TEXT.encode()
        for cut in range(len(data) + 1):
            validator = Utf8Validator()
            validator.feed(data[:cut])
            validator.feed(data[cut:])
            assert validator.finish() == self.TEXT

    def test_valid_text_byte_by_byte_succeeds(self) -> None:
        """Valid text fed one byte at a time decodes to the same text."""
        assert validate_bytewise(self.TEXT.encode()) == self.TEXT

    def test_validator_is_reusable_after_finish(self) -> None:
        """After finish, the same validator starts a fresh message."""
        validator = Utf8Validator()
        validator.feed(b"one")
        assert validator.finish() == "one"
        validator.feed(b"two")
        assert validator.finish() == "two"

    def test_empty_message_is_empty_text(self) -> None:
        """A message with no bytes is the empty string."""
        assert Utf8Validator().finish() == ""

    def test_decode_text_fast_path(self) -> None:
        """A whole message decodes in one call."""
        assert decode_text(self.TEXT.encode()) == self.TEXT

    def test_decode_text_rejects_invalid(self) -> None:
        """The fast path raises InvalidUTF8 too."""
        with pytest.raises(InvalidUTF8):
            decode_text(b"abc\xff")


@given(st.binary(max_size=24) | st.text(max_size=12).map(str.encode))
def test_incremental_and_whole_decoding_agree(data: bytes) -> None:
    """Byte-by-byte validation and whole decoding give the same text or the same error."""
    assert validate_bytewise(data) == decode_whole(data)


@given(st.text(max_size=40), st.data())
def test_any_split_of_valid_text_succeeds(text: str, data: st.DataObject) -> None:
    """Valid text split into any pieces decodes back to itself."""
    encoded = text.encode()
    cuts = sorted(data.draw(st.lists(st.integers(0, len(encoded)), max_size=6)))
    validator = Utf8Validator()
    for start, end in pairwise([0, *cuts, len(encoded)]):
        validator.feed(encoded[start:end])
    assert validator.finish() == text
