"""The bodies of the workers' relay messages (see :mod:`wsdaemon.broker.relay`): names, counts, bounds, answers.

Bodies start with the channel name (2-byte length, UTF-8) where they have one;
numbers are big-endian. Both ends are ours: a malformed body is a broken peer
(:class:`~wsdaemon.workers.channel.ChannelError`).
"""

from __future__ import annotations

import dataclasses
import struct
from typing import Any

from wsdaemon.hub import HubLimits
from wsdaemon.workers.channel import ChannelError

NAME = struct.Struct("!H")
NUMBER = struct.Struct("!I")
ANSWER = struct.Struct("!II")
_LIMIT_FIELDS = dataclasses.fields(HubLimits)
#: Every HubLimits field as a double (all are integers below 2**53, or seconds).
LIMITS = struct.Struct(f"!{len(_LIMIT_FIELDS)}d")
POSITION_ANSWER = struct.Struct("!IQ")  # question, offset; then the epoch
HISTORY_QUERY = struct.Struct("!IqB")  # question, since (-1: no query), epoch length; then limits, epoch, channel
HISTORY_ENTRY = struct.Struct("!IQ?")  # question, offset, binary; then the message
HISTORY_ANSWER = struct.Struct("!IQQ")  # question, first offset, last offset; then the epoch


def pack(channel: str, rest: bytes = b"") -> bytes:
    """A body: the channel name, then ``rest``."""
    name = channel.encode("utf-8")
    return NAME.pack(len(name)) + name + rest


def unpack(body: bytes) -> tuple[str, bytes]:
    """The channel name and the rest of a body.

    Raises:
        ChannelError: too short, or a name that is not UTF-8.
    """
    if len(body) < NAME.size:
        raise ChannelError("relay body without a channel name")
    (size,) = NAME.unpack_from(body)
    if len(body) < NAME.size + size:
        raise ChannelError("relay body shorter than its channel name")
    try:
        return body[NAME.size : NAME.size + size].decode("utf-8"), body[NAME.size + size :]
    except UnicodeDecodeError:
        raise ChannelError("relay channel name is not UTF-8") from None


def pack_limits(limits: HubLimits) -> bytes:
    """An endpoint's history bounds, for the main process."""
    return LIMITS.pack(*(float(getattr(limits, field.name)) for field in _LIMIT_FIELDS))


def unpack_limits(data: bytes) -> HubLimits:
    """The bounds :func:`pack_limits` wrote.

    Raises:
        ChannelError: the wrong size, or a bound out of its range.
    """
    if len(data) != LIMITS.size:
        raise ChannelError("relay history bounds of the wrong size")
    values = LIMITS.unpack(data)
    try:
        fields: dict[str, Any] = {
            field.name: (value if field.type in (float, "float") else int(value))
            for field, value in zip(_LIMIT_FIELDS, values, strict=True)
        }
        limits = HubLimits(**fields)
        limits.validate()
    except (ValueError, OverflowError) as error:
        raise ChannelError(f"relay history bounds out of range: {error}") from None
    return limits


def number(data: bytes) -> int:
    """A 4-byte count or question number."""
    if len(data) != NUMBER.size:
        raise ChannelError("relay count of the wrong size")
    value: int = NUMBER.unpack(data)[0]
    return value
