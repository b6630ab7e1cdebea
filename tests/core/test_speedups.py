"""Tests for wsdaemon.core.speedups: the C accelerator and its pure-Python twin agree."""

from __future__ import annotations

import sys
from collections.abc import Callable
from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.helpers import naive_mask
from wsdaemon.core import speedups
from wsdaemon.core.speedups import UTF8_ACCEPT, UTF8_REJECT, py_apply_mask, py_unmask_join, py_utf8_validate

try:
    from wsdaemon.core import _speedups  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - the extension is optional
    _speedups = None

MASKERS: list[Callable[[bytes, bytes], bytes]] = [py_apply_mask]
JOINERS: list[Callable[[list[bytes | memoryview], bytes], bytes]] = [py_unmask_join]
VALIDATORS: list[Callable[[int, bytes], int]] = [py_utf8_validate]
if _speedups is not None:
    MASKERS.append(_speedups.apply_mask)
    JOINERS.append(_speedups.unmask_join)
    VALIDATORS.append(_speedups.utf8_validate)

#: Every sequence that starts a character or could: lead bytes alone, with each continuation, and longer prefixes.
LEADS = list(range(0xC0, 0x100))
CONTINUATIONS = [0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0]


def reference(data: bytes) -> int:
    """What CPython's strict decoder says: ACCEPT, 'inside a character' (positive) or REJECT."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as error:
        if error.reason == "unexpected end of data":
            return 1
        return UTF8_REJECT
    return UTF8_ACCEPT


def verdict(state: int) -> int:
    """Collapse the mid-character states into one, to compare with :func:`reference`."""
    return 1 if state > 0 else state


def validate_in_pieces(validate: Callable[[int, bytes], int], data: bytes, cuts: list[int]) -> int:
    """Run ``validate`` over ``data`` cut at ``cuts``, stopping at the first rejection."""
    state = UTF8_ACCEPT
    bounds = [0, *sorted(cuts), len(data)]
    for start, end in pairwise(bounds):
        state = validate(state, data[start:end])
        if state == UTF8_REJECT:
            break
    return state


def first_rejection(validate: Callable[[int, bytes], int], data: bytes) -> int | None:
    """Index of the byte at which byte-by-byte validation first rejects, or None."""
    state = UTF8_ACCEPT
    for i in range(len(data)):
        state = validate(state, data[i : i + 1])
        if state == UTF8_REJECT:
            return i
    return None


def earliest_impossible_byte(data: bytes) -> int | None:
    """Index of the first byte after which no continuation can make ``data`` valid (by brute force)."""
    for i in range(len(data)):
        prefix = data[: i + 1]
        if reference(prefix) == UTF8_REJECT and not any(
            reference(prefix + bytes(tail)) != UTF8_REJECT
            for tail in ([], [0x80], [0x80, 0x80], [0x90, 0x80], [0xA0, 0x80], [0x80, 0x80, 0x80])
        ):
            return i
    return None


class TestMask:
    """RFC 6455 §5.3 masking, both implementations."""

    @pytest.mark.parametrize("apply_mask", MASKERS)
    @pytest.mark.parametrize("length", [0, 1, 3, 4, 7, 8, 9, 15, 16, 17, 1000])
    def test_mask_matches_a_byte_loop(self, apply_mask: Callable[[bytes, bytes], bytes], length: int) -> None:
        """Every length, including the word-at-a-time path and its tail, XORs like the byte loop."""
        data = bytes((i * 7 + 3) % 256 for i in range(length))
        assert apply_mask(data, b"\x01\x80\xfe\x7f") == naive_mask(data, b"\x01\x80\xfe\x7f")

    @given(data=st.binary(max_size=100), mask=st.binary(min_size=4, max_size=4))
    def test_implementations_agree(self, data: bytes, mask: bytes) -> None:
        """The C and pure-Python maskers give identical bytes."""
        assert {apply_mask(data, mask) for apply_mask in MASKERS} == {naive_mask(data, mask)}

    def test_c_mask_accepts_any_buffer(self) -> None:
        """The C masker reads bytearrays and memoryviews too."""
        assert _speedups.apply_mask(memoryview(b"abcd"), bytearray(b"\x00\x00\x00\x01")) == b"abce"

    def test_c_mask_rejects_a_wrong_key_length(self) -> None:
        """The C masker insists on a 4-byte key."""
        with pytest.raises(ValueError, match="4 bytes"):
            _speedups.apply_mask(b"data", b"abc")


class TestUnmaskJoin:
    """One payload received in pieces, unmasked as if it had come whole."""

    @given(
        data=st.binary(max_size=200),
        cuts=st.lists(st.integers(0, 200), max_size=8),
        mask=st.binary(min_size=4, max_size=4),
    )
    def test_pieces_unmask_like_the_whole(self, data: bytes, cuts: list[int], mask: bytes) -> None:
        """Cut anywhere (mid-word, mid-key, empty pieces, views), the result is the whole payload unmasked."""
        bounds = [0, *sorted(min(cut, len(data)) for cut in cuts), len(data)]
        pieces: list[bytes | memoryview] = [
            memoryview(data)[start:end] if i % 2 else data[start:end] for i, (start, end) in enumerate(pairwise(bounds))
        ]
        assert {join(pieces, mask) for join in JOINERS} == {naive_mask(data, mask)}

    def test_no_pieces_is_empty(self) -> None:
        """Nothing to join gives b''."""
        assert {join([], b"abcd") for join in JOINERS} == {b""}

    def test_c_join_refuses_bad_arguments(self) -> None:
        """A non-buffer piece, a short key or a non-sequence raise, as Python would."""
        with pytest.raises(TypeError):
            _speedups.unmask_join([b"ok", 3], b"abcd")
        with pytest.raises(ValueError, match="4 bytes"):
            _speedups.unmask_join([b"ok"], b"abc")
        with pytest.raises(TypeError):
            _speedups.unmask_join(5, b"abcd")


class TestUtf8Validate:
    """RFC 6455 §8.1 validation, both implementations, against CPython's decoder."""

    @pytest.mark.parametrize("validate", VALIDATORS)
    def test_every_short_sequence_matches_cpython(self, validate: Callable[[int, bytes], int]) -> None:
        """Each lead byte, alone and with each kind of continuation, gets CPython's verdict."""
        cases = [bytes([lead, *rest]) for lead in LEADS for rest in ([], *([c] for c in CONTINUATIONS))]
        cases += [bytes([lead, c1, c2]) for lead in range(0xE0, 0xF5) for c1 in CONTINUATIONS for c2 in (0x80, 0x41)]
        for data in cases:
            assert verdict(validate(UTF8_ACCEPT, b"ok" + data)) == reference(b"ok" + data), data.hex()

    @pytest.mark.parametrize("validate", VALIDATORS)
    @pytest.mark.parametrize(
        "bad", [b"\xf4\x90\x80\x80", b"\xc0\xaf", b"\xed\xa0\x80", b"\xe0\x80\xaf", b"\xf0\x80\x80\x80", b"\xff"]
    )
    def test_fail_fast_at_the_first_impossible_byte(self, validate: Callable[[int, bytes], int], bad: bytes) -> None:
        """Fed byte by byte, validation rejects at the byte that rules out every valid character."""
        data = "κόσμε".encode() + bad + b"edited"
        assert first_rejection(validate, data) == earliest_impossible_byte(data)

    @pytest.mark.parametrize("validate", VALIDATORS)
    def test_ascii_fast_path_and_long_input(self, validate: Callable[[int, bytes], int]) -> None:
        """Long ASCII runs (the word-at-a-time path) and a late bad byte are handled."""
        assert validate(UTF8_ACCEPT, b"a" * 1001) == UTF8_ACCEPT
        assert validate(UTF8_ACCEPT, b"a" * 1001 + b"\xff" + b"a" * 20) == UTF8_REJECT

    @pytest.mark.parametrize("validate", VALIDATORS)
    def test_reject_is_final(self, validate: Callable[[int, bytes], int]) -> None:
        """Once rejected, more valid bytes do not bring the state back."""
        assert validate(UTF8_REJECT, b"fine") == UTF8_REJECT

    @pytest.mark.parametrize("validate", VALIDATORS)
    def test_empty_input_keeps_the_state(self, validate: Callable[[int, bytes], int]) -> None:
        """No bytes, no change."""
        mid = validate(UTF8_ACCEPT, b"\xe2\x82")
        assert mid > 0 and validate(mid, b"") == mid and validate(UTF8_ACCEPT, b"") == UTF8_ACCEPT

    def test_state_tables_agree(self) -> None:
        """Every (state, byte) step of the pure-Python table equals the C one (or CPython's verdict)."""
        states = [UTF8_REJECT, UTF8_ACCEPT, *sorted(speedups._NEXT)]
        for state in states:
            for byte in range(256):
                step = speedups._step(state, byte)
                assert step in states
                if _speedups is not None:
                    assert _speedups.utf8_validate(state, bytes([byte])) == step, (state, byte)
        for byte in range(256):
            assert verdict(speedups._step(UTF8_ACCEPT, byte)) == reference(bytes([byte]))

    @given(data=st.binary(max_size=40) | st.text(max_size=20).map(str.encode), cuts=st.lists(st.integers(0, 40)))
    def test_any_split_matches_cpython(self, data: bytes, cuts: list[int]) -> None:
        """Both implementations, fed in any pieces, reach CPython's verdict on the whole."""
        cuts = [c for c in cuts if c <= len(data)]
        for validate in VALIDATORS:
            assert verdict(validate_in_pieces(validate, data, cuts)) == reference(data)

    @given(data=st.binary(max_size=24))
    def test_implementations_agree_byte_by_byte(self, data: bytes) -> None:
        """The C and pure-Python validators pass through the same states."""
        states = set()
        for validate in VALIDATORS:
            trace, state = [], UTF8_ACCEPT
            for i in range(len(data)):
                state = validate(state, data[i : i + 1])
                trace.append(state)
            states.add(tuple(trace))
        assert len(states) == 1


class TestLoading:
    """The accelerator is optional and can be switched off."""

    @pytest.mark.parametrize("value", ["1", "yes"])
    def test_environment_switch_forces_pure_python(self, monkeypatch: pytest.MonkeyPatch, value: str) -> None:
        """WSDAEMON_NO_SPEEDUPS=1 selects the pure-Python functions."""
        monkeypatch.setenv("WSDAEMON_NO_SPEEDUPS", value)
        assert speedups._load() == (py_apply_mask, py_unmask_join, py_utf8_validate, False)

    def test_missing_extension_falls_back(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Without the compiled module, the pure-Python functions are used."""
        import wsdaemon.core

        monkeypatch.delenv("WSDAEMON_NO_SPEEDUPS", raising=False)
        monkeypatch.delattr(wsdaemon.core, "_speedups", raising=False)
        monkeypatch.setitem(sys.modules, "wsdaemon.core._speedups", None)  # makes the import fail
        assert speedups._load() == (py_apply_mask, py_unmask_join, py_utf8_validate, False)

    @pytest.mark.parametrize("value", [None, "", "0"])
    def test_extension_is_used_when_built(self, monkeypatch: pytest.MonkeyPatch, value: str | None) -> None:
        """With the extension built and the switch unset, empty or 0, the C functions are used."""
        if value is None:
            monkeypatch.delenv("WSDAEMON_NO_SPEEDUPS", raising=False)
        else:
            monkeypatch.setenv("WSDAEMON_NO_SPEEDUPS", value)
        assert speedups._load() == (_speedups.apply_mask, _speedups.unmask_join, _speedups.utf8_validate, True)


def test_accelerator_is_built_and_used() -> None:
    """An install with a C compiler (as in CI) builds the extension and the core uses it."""
    assert _speedups is not None
    assert speedups.ACCELERATED
    assert speedups.apply_mask is _speedups.apply_mask
    assert speedups.unmask_join is _speedups.unmask_join
