"""The ``broadcast`` handler's options: read, typed and checked together, before anything starts.

The history bounds are :class:`~wsdaemon.hub.HubLimits` fields, read under their
own names (``history_size``, ``history_ttl_seconds``, ...), so a bound cannot
exist without an option. Two combinations are refused because they would break
the envelope's promise that a client never sees a silent gap: a queue overflow
policy that drops messages (``drop-oldest``, ``latest``), and
``deliver_to_sender = false`` (the sender's stream would skip its own offsets).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from wsdaemon.handlers.options import OptionReader
from wsdaemon.hub import HubLimits, hub_limit_ranges

OVERFLOW_POLICIES = ("close", "drop-oldest", "latest")
#: RFC 6455 §7.4.1: 1008 policy violation; 1013 try again later.
OVERFLOW_CLOSE_CODES = (1008, 1013)
#: The envelopes an endpoint may wrap its messages in (docs/recovery.md).
ENVELOPES = ("json",)


@dataclass(frozen=True)
class BroadcastSettings:
    """An endpoint's validated ``broadcast`` options (see ``--list-handlers``)."""

    channel_from_path: bool = False
    deliver_to_sender: bool = True
    queue_max_messages: int = 1000
    queue_max_bytes: int = 1024 * 1024
    overflow: str = "close"
    overflow_close_code: int = 1008
    channels_claim: str | None = None  # the identity's claim listing the channel paths it may join
    envelope: str | None = None  # "json": positions and notices on the wire (docs/recovery.md)
    hub: HubLimits = field(default_factory=HubLimits)

    @property
    def history(self) -> HubLimits | None:
        """The bounds a publish is positioned with, or None for an endpoint with neither history nor envelope."""
        return self.hub if self.envelope is not None or self.hub.history_size > 0 else None


def read_hub_limits(read: OptionReader) -> HubLimits:
    """Every :class:`HubLimits` field, as the option of its name, within its declared range."""
    defaults = HubLimits()
    values: dict[str, Any] = {}
    for name, (low, high) in hub_limit_ranges().items():
        default = getattr(defaults, name)
        if isinstance(default, int):
            values[name] = read.integer(name, default, int(low), int(high))
        else:
            values[name] = read.number(name, default, low, high)
    return HubLimits(**values)


def read_settings(options: Mapping[str, Any]) -> BroadcastSettings:
    """Validate the options.

    Raises:
        HandlerOptionsError: an option has the wrong type or is out of range (all of them at once).
    """
    read = OptionReader(options, collect=True)
    defaults = BroadcastSettings()
    close_code = read.integer("overflow_close_code", defaults.overflow_close_code, 1008, 1013)
    if close_code not in OVERFLOW_CLOSE_CODES:
        read.report("overflow_close_code", "1008 (policy violation) or 1013 (try again later)", close_code)
    envelope = read.choice("envelope", ENVELOPES[0], ENVELOPES) if "envelope" in options else None
    settings = BroadcastSettings(
        channel_from_path=read.boolean("channel_from_path", defaults.channel_from_path),
        deliver_to_sender=read.boolean("deliver_to_sender", defaults.deliver_to_sender),
        queue_max_messages=read.integer("queue_max_messages", defaults.queue_max_messages, 1, 1_000_000),
        queue_max_bytes=read.integer("queue_max_bytes", defaults.queue_max_bytes, 1024, 2**30),
        overflow=read.choice("overflow", defaults.overflow, OVERFLOW_POLICIES),
        overflow_close_code=close_code,
        channels_claim=read.string("channels_claim") if "channels_claim" in options else None,
        envelope=envelope,
        hub=read_hub_limits(read),
    )
    if envelope is not None:
        if settings.overflow != "close":
            read.report(
                "overflow", '"close" with envelope (dropping messages would be a silent gap)', settings.overflow
            )
        if not settings.deliver_to_sender:
            read.report("deliver_to_sender", "true with envelope (every member gets every offset)", False)
    read.check()
    return settings
