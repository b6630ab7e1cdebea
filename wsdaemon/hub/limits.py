"""Every size, count and time bound of the hub, in one place.

Rules for this file (the same as :mod:`wsdaemon.core.limits`):

* Each bound is a field of :class:`HubLimits` with its unit in its name, a
  finite default and a ``help`` entry in its metadata, with its range.
* The field name is the configuration key (a ``broadcast`` endpoint's
  options), so a bound cannot exist without a key.
* ``history_size = 0`` means *history off* (offsets are still given, nothing
  is kept), never "unlimited": there is no unlimited.
"""

from __future__ import annotations

from dataclasses import dataclass

from wsdaemon.core.limits import KIB, MIB, field_help, field_ranges, limit_field, validate_fields


@dataclass(frozen=True, slots=True)
class HubLimits:
    """The bounds of one endpoint's history and of each subscriber's replay."""

    history_size: int = limit_field(
        0, 0, 1_000_000, "messages kept per channel for clients that reconnect; 0 = history off (the default)"
    )
    history_ttl_seconds: float = limit_field(
        300.0,
        1.0,
        30 * 86400.0,
        "a channel with no publish for this long drops its history (with Redis, its epoch too)",
    )
    history_max_bytes: int = limit_field(
        1 * MIB, 0, 2**32, "payload bytes kept per channel; older messages are dropped first"
    )
    history_total_max_bytes: int = limit_field(
        64 * MIB,
        0,
        2**40,
        "payload bytes kept across all channels of an endpoint; the least recently published channels go first",
    )
    history_max_channels: int = limit_field(
        10_000,
        1,
        10**7,
        "channels whose offsets and history are kept; the least recently published one is forgotten first",
    )
    # The replay buffers hold the same Publication objects as history and every other subscriber, so
    # their real cost is a pointer per held message; the byte bound is on what one subscriber may hold.
    replay_buffer_max_messages: int = limit_field(
        1000,
        1,
        1_000_000,
        "live messages held per subscriber while its history is fetched; more -> it fetches again",
    )
    replay_buffer_max_bytes: int = limit_field(
        1 * MIB,
        1 * KIB,
        2**32,
        "payload bytes held per subscriber while its history is fetched; more -> it fetches again",
    )

    def validate(self) -> None:
        """Check every field against its declared range.

        Raises:
            ValueError: naming the first field out of range or of the wrong type.
        """
        validate_fields(self)


def hub_limit_ranges() -> dict[str, tuple[int | float, int | float]]:
    """Each hub limit's name mapped to its inclusive (minimum, maximum), for option readers."""
    return field_ranges(HubLimits)


def hub_limit_help() -> dict[str, str]:
    """Each hub limit's name mapped to its one-line description (``--list-handlers``, the sample config)."""
    return field_help(HubLimits)
