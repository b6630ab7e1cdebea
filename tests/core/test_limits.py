"""Tests for wsdaemon.core.limits: every bound, its default and its range (house rule 5)."""

from __future__ import annotations

import dataclasses

import pytest

from wsdaemon.core.limits import KIB, MIB, Limits, limit_help, limit_ranges

#: The defaults DESIGN §2.5 documents (and the lead settled where it said "e.g.").
DOCUMENTED_DEFAULTS = {
    "max_message_bytes": 1 * MIB,
    "max_frame_bytes": 1 * MIB,
    "max_fragments": 4096,
    "handshake_timeout_seconds": 10.0,
    "close_timeout_seconds": 10.0,
    "idle_timeout_seconds": 600.0,
    "write_buffer_high_bytes": 256 * KIB,
    "write_buffer_max_bytes": 4 * MIB,
    "http_max_headers": 100,
    "http_max_header_bytes": 16 * KIB,
}

UNIT_SUFFIXES = ("_bytes", "_seconds", "_fragments", "_connections", "_ip", "_headers", "_clients")


class TestDefaults:
    """Every limit has a safe, finite default."""

    @pytest.mark.parametrize(("name", "value"), sorted(DOCUMENTED_DEFAULTS.items()))
    def test_documented_default(self, name: str, value: float) -> None:
        """The default matches the design table (max_message_bytes is 1 MiB)."""
        assert getattr(Limits(), name) == value

    def test_defaults_are_valid(self) -> None:
        """The defaults pass their own range checks."""
        Limits().validate()

    @pytest.mark.parametrize("name", [f.name for f in dataclasses.fields(Limits)])
    def test_every_limit_is_finite_and_documented(self, name: str) -> None:
        """Each limit has a positive finite default, a range and a one-line help text."""
        minimum, maximum = limit_ranges()[name]
        assert 0 < minimum <= getattr(Limits(), name) <= maximum < float("inf")
        assert limit_help()[name].strip()

    @pytest.mark.parametrize("name", [f.name for f in dataclasses.fields(Limits)])
    def test_every_limit_names_its_unit(self, name: str) -> None:
        """House rule 5: the unit is in the name."""
        assert name.endswith(UNIT_SUFFIXES), name

    def test_limits_are_frozen(self) -> None:
        """A Limits value cannot be changed in place; replace() makes a copy."""
        limits = Limits()
        with pytest.raises(dataclasses.FrozenInstanceError):
            limits.max_message_bytes = 1  # type: ignore[misc]
        changed = limits.replace(max_message_bytes=2048)
        assert changed.max_message_bytes == 2048 and limits.max_message_bytes == MIB


class TestValidate:
    """validate() rejects anything out of range (no "0 means unlimited")."""

    @pytest.mark.parametrize("name", sorted(limit_ranges()))
    def test_below_minimum_is_rejected(self, name: str) -> None:
        """A value under the minimum names the field."""
        minimum, _ = limit_ranges()[name]
        with pytest.raises(ValueError, match=name):
            Limits().replace(**{name: minimum / 2 if isinstance(minimum, float) else minimum - 1}).validate()

    @pytest.mark.parametrize("name", sorted(limit_ranges()))
    def test_above_maximum_is_rejected(self, name: str) -> None:
        """A value over the maximum names the field."""
        _, maximum = limit_ranges()[name]
        with pytest.raises(ValueError, match=name):
            Limits().replace(**{name: maximum * 2}).validate()

    @pytest.mark.parametrize("name", sorted(limit_ranges()))
    def test_bounds_are_inclusive(self, name: str) -> None:
        """The minimum and the maximum themselves are allowed."""
        for value in limit_ranges()[name]:
            Limits().replace(**{name: value}).validate()

    def test_zero_is_not_unlimited(self) -> None:
        """0 is rejected, not taken as "no limit"."""
        with pytest.raises(ValueError, match="max_message_bytes"):
            Limits(max_message_bytes=0).validate()

    @pytest.mark.parametrize(
        ("name", "value"),
        [
            ("max_message_bytes", 1.5),
            ("fragment_outgoing_bytes", 4096.0),
            ("max_fragments", True),
            ("close_timeout_seconds", "10"),
            ("idle_timeout_seconds", float("nan")),
        ],
    )
    def test_wrong_type_is_rejected(self, name: str, value: object) -> None:
        """A byte count must be an int; a bool, a string or NaN is refused."""
        with pytest.raises(ValueError, match=name):
            Limits().replace(**{name: value}).validate()

    def test_integer_seconds_are_accepted(self) -> None:
        """A whole number of seconds may be written as an int."""
        Limits(close_timeout_seconds=5).validate()
