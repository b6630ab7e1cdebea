"""Offsets and epochs: where a message sits in its channel's history.

Rules for this file:

* Every message published on a channel gets an **offset**: the channel's
  previous offset plus one, starting at :data:`FIRST_OFFSET` (1). Offset 0
  therefore means "before the first message", which is what a client that has
  seen nothing of an epoch holds.
* Offsets stay at or below :data:`MAX_OFFSET` (2**53 - 1), the largest integer
  a JavaScript ``Number`` holds exactly, so browsers can track them. A channel
  that reaches it starts a new epoch (in about 285 years at a million messages
  a second).
* Each channel has an **epoch**: an opaque string that changes whenever the
  channel's history was lost (the daemon restarted without a shared store,
  Redis was flushed, the channel was evicted or expired). An offset is only
  meaningful together with its epoch: ``(epoch, offset)`` is a *position*.
* An epoch is 1 to :data:`MAX_EPOCH_CHARS` characters of ``A-Z a-z 0-9 _ . -``,
  so it needs no escaping in a URL query, in JSON or in a Redis key.
* Nothing here reads a clock or a random source: :func:`make_epoch` is given
  its entropy and the time, so tests are deterministic and the caller decides
  where randomness comes from (``os.urandom``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TypeGuard

#: The offset of a channel's first message; 0 means "nothing yet".
FIRST_OFFSET = 1
#: The largest offset (JavaScript's ``Number.MAX_SAFE_INTEGER``).
MAX_OFFSET = 2**53 - 1
#: Longest epoch, in characters (all ASCII).
MAX_EPOCH_CHARS = 64
#: Fewest entropy bytes :func:`make_epoch` accepts: 64 bits, so two epochs never collide by chance.
MIN_EPOCH_ENTROPY_BYTES = 8

_EPOCH = re.compile(rf"[A-Za-z0-9_.\-]{{1,{MAX_EPOCH_CHARS}}}", re.ASCII)


def is_epoch(value: object) -> TypeGuard[str]:
    """Whether ``value`` is a well-formed epoch string (not whether it is current)."""
    return isinstance(value, str) and _EPOCH.fullmatch(value) is not None


def is_offset(value: object) -> TypeGuard[int]:
    """Whether ``value`` is an offset a position may hold: an ``int`` (not a bool) from 0 to MAX_OFFSET."""
    return type(value) is int and 0 <= value <= MAX_OFFSET


def make_epoch(entropy: bytes, now_seconds: float) -> str:
    """A new epoch: the time it started plus random bits.

    The time part (hexadecimal Unix seconds) makes epochs readable in logs
    and ordered by age for a human; the random part makes them unique even
    for two daemons started in the same second.

    Args:
        entropy: at least :data:`MIN_EPOCH_ENTROPY_BYTES` random bytes (the
            caller passes ``os.urandom(8)``); the first 8 are used.
        now_seconds: the current Unix time (the caller passes
            ``time.time()``); clamped to 0 if negative.

    Returns:
        e.g. ``"6743a1f0-9c1e2b3a4d5f6a7b"`` (25 characters).

    Raises:
        ValueError: fewer than 8 entropy bytes.
    """
    if len(entropy) < MIN_EPOCH_ENTROPY_BYTES:
        raise ValueError(f"an epoch needs at least {MIN_EPOCH_ENTROPY_BYTES} bytes of entropy, got {len(entropy)}")
    return f"{max(0, int(now_seconds)):x}-{entropy[:MIN_EPOCH_ENTROPY_BYTES].hex()}"


@dataclass(frozen=True, slots=True)
class ChannelState:
    """What the recovery decision needs to know of a channel: its epoch and retained offsets.

    ``first_offset`` is the oldest offset still in history and ``last_offset``
    the newest offset ever given in this epoch; with nothing retained (history
    off, everything trimmed, or no message yet) ``first_offset`` is
    ``last_offset + 1``. A channel nobody published on is
    ``ChannelState(epoch, 1, 0)``.

    Attributes:
        epoch: the channel's current epoch.
        first_offset: oldest retained offset (``last_offset + 1`` if none).
        last_offset: newest offset of the epoch (0 before the first message).
    """

    epoch: str
    first_offset: int
    last_offset: int

    def __post_init__(self) -> None:
        """Refuse an impossible state, so a broker bug shows up where it starts.

        Raises:
            ValueError: a malformed epoch, or offsets out of order or range.
        """
        if not is_epoch(self.epoch):
            raise ValueError(f"malformed epoch {self.epoch!r}")
        last, first = self.last_offset, self.first_offset
        if not (is_offset(last) and type(first) is int and FIRST_OFFSET <= first <= last + 1):
            raise ValueError(f"impossible offsets: first {self.first_offset!r}, last {self.last_offset!r}")

    @property
    def retained(self) -> int:
        """How many messages history holds."""
        return self.last_offset + 1 - self.first_offset
