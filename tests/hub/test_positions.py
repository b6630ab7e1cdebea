"""Offsets, epochs and channel states (wsdaemon.hub.positions)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wsdaemon.hub import MAX_EPOCH_CHARS, MAX_OFFSET, ChannelState, is_epoch, is_offset, make_epoch


def test_make_epoch_is_time_then_entropy() -> None:
    """An epoch shows when it started (hex seconds) and 64 random bits, and is a valid epoch."""
    epoch = make_epoch(bytes(range(8)), 0x6743A1F0 + 0.9)
    assert epoch == "6743a1f0-0001020304050607"
    assert is_epoch(epoch)


def test_make_epoch_differs_with_entropy_or_time() -> None:
    """Two daemons starting in the same second get different epochs; so does one restarting."""
    assert make_epoch(b"\x00" * 8, 100) != make_epoch(b"\x01" + b"\x00" * 7, 100)
    assert make_epoch(b"\x00" * 8, 100) != make_epoch(b"\x00" * 8, 101)


def test_make_epoch_needs_enough_entropy() -> None:
    """Fewer than 8 random bytes could collide, so it is refused."""
    with pytest.raises(ValueError, match="at least 8 bytes"):
        make_epoch(b"1234567", 0)


def test_make_epoch_clamps_negative_time() -> None:
    """A clock before 1970 still gives a well-formed epoch."""
    assert is_epoch(make_epoch(b"\xff" * 16, -5.0))


@given(st.binary(min_size=8), st.floats(min_value=-1e12, max_value=1e12))
def test_make_epoch_always_well_formed(entropy: bytes, now: float) -> None:
    """Any entropy and time give an epoch that needs no escaping in a URL or JSON."""
    assert is_epoch(make_epoch(entropy, now))


@pytest.mark.parametrize("value", ["a", "A-z_0.9", "x" * MAX_EPOCH_CHARS])
def test_well_formed_epochs(value: str) -> None:
    """Epochs are 1 to 64 characters of A-Z a-z 0-9 _ . -."""
    assert is_epoch(value)


@pytest.mark.parametrize("value", ["", "x" * (MAX_EPOCH_CHARS + 1), "a b", "a/b", "é", "a\n", None, 5, b"abc"])
def test_malformed_epochs(value: object) -> None:
    """Anything else is not an epoch."""
    assert not is_epoch(value)


@pytest.mark.parametrize(("value", "ok"), [(0, True), (1, True), (MAX_OFFSET, True), (MAX_OFFSET + 1, False)])
def test_offsets_fit_javascript_numbers(value: int, ok: bool) -> None:
    """Offsets go from 0 to 2**53 - 1, what a browser holds exactly."""
    assert is_offset(value) is ok


@pytest.mark.parametrize("value", [-1, True, 1.0, "1", None])
def test_non_offsets(value: object) -> None:
    """Negative numbers, booleans, floats and strings are not offsets."""
    assert not is_offset(value)


def test_channel_state_of_a_new_channel() -> None:
    """A channel nobody published on retains nothing and is at offset 0."""
    state = ChannelState("e", 1, 0)
    assert state.retained == 0


def test_channel_state_retained() -> None:
    """Retained messages are first..last."""
    assert ChannelState("e", 5, 14).retained == 10


@pytest.mark.parametrize(
    ("epoch", "first", "last"),
    [("", 1, 0), ("e", 0, 0), ("e", 3, 1), ("e", 1, -1), ("e", 1, MAX_OFFSET + 1), ("e", 1.0, 3), ("e", 1, True)],
)
def test_impossible_channel_states_are_refused(epoch: str, first: int, last: int) -> None:
    """A broker handing back nonsense is caught where it enters, not deep in a replay."""
    with pytest.raises(ValueError):
        ChannelState(epoch, first, last)
