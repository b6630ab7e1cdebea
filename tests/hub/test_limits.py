"""The hub's bounds (wsdaemon.hub.limits): named, finite, each with its range and help."""

from __future__ import annotations

import dataclasses

import pytest

from wsdaemon.hub import HubLimits, hub_limit_help, hub_limit_ranges


def test_defaults_are_valid_and_history_is_off() -> None:
    """The defaults pass validation, and history is off unless asked for."""
    limits = HubLimits()
    limits.validate()
    assert limits.history_size == 0


def test_every_limit_has_a_unit_range_and_help() -> None:
    """Each field names its unit, has a finite range containing its default and a help line."""
    ranges, help = hub_limit_ranges(), hub_limit_help()
    for field in dataclasses.fields(HubLimits):
        assert field.name.endswith(("_size", "_bytes", "_seconds", "_channels", "_messages")), field.name
        minimum, maximum = ranges[field.name]
        assert minimum <= field.default <= maximum < float("inf")
        assert help[field.name]


@pytest.mark.parametrize(
    "changes",
    [
        {"history_size": -1},
        {"history_size": 1_000_001},
        {"history_ttl_seconds": 0},
        {"history_max_channels": 0},
        {"replay_buffer_max_messages": 0},
        {"history_size": True},
        {"history_size": 1.5},
        {"history_ttl_seconds": "60"},
    ],
)
def test_out_of_range_or_wrong_type_is_refused(changes: dict[str, object]) -> None:
    """validate() names the first field out of range or of the wrong type."""
    with pytest.raises(ValueError, match=next(iter(changes))):
        HubLimits(**changes).validate()  # type: ignore[arg-type]


def test_integer_seconds_are_fine() -> None:
    """A TOML integer is accepted for a seconds field."""
    HubLimits(history_ttl_seconds=60).validate()
