"""``[limits]`` tables, global or per endpoint: the keys and ranges of :class:`~wsdaemon.core.limits.Limits`."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from wsdaemon.config.checks import Report, join_key, unknown_key
from wsdaemon.config.model import LISTENER_LIMITS
from wsdaemon.core.limits import Limits, limit_ranges

_RANGES = limit_ranges()
LIMIT_KEYS = tuple(_RANGES)
ENDPOINT_LIMIT_KEYS = tuple(name for name in LIMIT_KEYS if name not in LISTENER_LIMITS)
_FLOAT_LIMITS = frozenset(f.name for f in dataclasses.fields(Limits) if isinstance(f.default, float))
_WRITE_BUFFER_KEYS = frozenset({"write_buffer_high_bytes", "write_buffer_max_bytes"})


def parse_limits(value: Any, key: str, base: Limits, allowed: Sequence[str], report: Report) -> Limits:
    """A limits table over ``base`` (the defaults, or the global limits for an endpoint)."""
    if value is None:
        return base
    if not isinstance(value, dict):
        report.bad(key, "a table", value)
        return base
    changes: dict[str, int | float] = {}
    for name, item in value.items():
        number = _limit_value(name, item)
        if name in allowed and number is not None:
            changes[name] = number
        elif name in allowed:
            minimum, maximum = _RANGES[name]
            kind = "a number" if name in _FLOAT_LIMITS else "an integer"
            report.bad(join_key(key, name), f"{kind} from {minimum} to {maximum}", item)
        elif name in LISTENER_LIMITS:
            hint = f"a per-connection limit ({name} is listener-wide and belongs in [limits])"
            report.bad(join_key(key, name), hint, item)
        else:
            unknown_key(join_key(key, name), name, allowed, report)
    limits = base.replace(**changes)
    _check_write_buffers(limits, value, changes, key, report)
    return limits


def _limit_value(name: str, value: Any) -> int | float | None:
    """The value if it fits the limit's type and range (a bool is no integer; NaN fails)."""
    if name not in _RANGES or isinstance(value, bool):
        return None
    if name in _FLOAT_LIMITS and isinstance(value, (int, float)):
        number: int | float = float(value)
    elif isinstance(value, int):
        number = value
    else:
        return None
    minimum, maximum = _RANGES[name]
    return number if minimum <= number <= maximum else None


def _check_write_buffers(
    limits: Limits, table: dict[str, Any], changes: dict[str, int | float], key: str, report: Report
) -> None:
    """The producer must be paused (high-water mark) before a slow peer is dropped (hard cap)."""
    named = _WRITE_BUFFER_KEYS & table.keys()
    if not named or not named <= changes.keys():
        return  # not set in this table, or a bad value that is already reported
    high, cap = limits.write_buffer_high_bytes, limits.write_buffer_max_bytes
    if high <= cap:
        return
    if "write_buffer_high_bytes" in named:  # blame the key the user wrote
        report.add(join_key(key, "write_buffer_high_bytes"), f"at most write_buffer_max_bytes ({cap})", repr(high))
    else:
        report.add(join_key(key, "write_buffer_max_bytes"), f"at least write_buffer_high_bytes ({high})", repr(cap))
