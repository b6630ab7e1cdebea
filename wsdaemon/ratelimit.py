"""Token buckets: how often a client may open connections, and a connection may send messages.

Sans-I/O, like the core: the time comes in as an argument (the reactor's
``seconds()``), nothing is scheduled, and rates and bursts are passed on each
call (they change on reload; the buckets stay). A bucket holds up to ``burst``
tokens, refills at ``rate`` per second, and each event takes one; an event
finding less than one token is refused, with the wait until the next token.

:class:`BucketTable` keeps one bucket per client address, bounded: a bucket that
has refilled is the same as no bucket, so full ones are dropped as they are met,
and past ``max_keys`` the least recently used one goes (an attacker cycling
through addresses cannot grow the table; at worst, with more than ``max_keys``
addresses in play, one throttled client gets a fresh bucket).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import NamedTuple

__all__ = ["BucketTable", "MessageLimiter", "MessageRate", "TokenBucket", "retry_after_seconds"]


class MessageRate(NamedTuple):
    """An endpoint's ``message_rate`` (messages per second) and ``message_burst`` (messages at once)."""

    rate: float
    burst: int


class TokenBucket:
    """One bucket: ``tokens`` left at time ``stamp``."""

    __slots__ = ("stamp", "tokens")

    def __init__(self, burst: float, now: float) -> None:
        self.tokens = float(burst)
        self.stamp = now

    def level(self, now: float, rate: float, burst: float) -> float:
        """The tokens there would be at ``now`` (refilled since ``stamp``, at most ``burst``)."""
        return min(float(burst), self.tokens + max(0.0, now - self.stamp) * rate)

    def take(self, now: float, rate: float, burst: float) -> float:
        """Take one token at ``now``: 0.0 when there was one, else the seconds until there will be (nothing taken)."""
        tokens = self.level(now, rate, burst)
        self.stamp = max(self.stamp, now)
        if tokens >= 1.0:
            self.tokens = tokens - 1.0
            return 0.0
        self.tokens = tokens
        return (1.0 - tokens) / rate


class MessageLimiter:
    """One connection's message rate: a bucket of ``rate.burst`` messages refilling at ``rate.rate`` per second."""

    __slots__ = ("bucket", "rate")

    def __init__(self, rate: MessageRate, now: float) -> None:
        self.rate = rate
        self.bucket = TokenBucket(rate.burst, now)

    def allow(self, now: float) -> bool:
        """Whether one more message at ``now`` is within the rate (it takes a token if so)."""
        return self.bucket.take(now, self.rate.rate, self.rate.burst) == 0.0


def retry_after_seconds(wait: float) -> int:
    """An HTTP ``Retry-After`` for a wait in seconds: whole seconds, rounded up, at least 1 (RFC 9110 §10.2.3)."""
    return max(1, math.ceil(wait))


class BucketTable:
    """One :class:`TokenBucket` per key (a client address), at most ``max_keys`` of them."""

    def __init__(self) -> None:
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def take(self, key: str, now: float, rate: float, burst: float, max_keys: int) -> float:
        """Take a token from ``key``'s bucket: 0.0, or the wait until one (see :meth:`TokenBucket.take`)."""
        bucket = self._buckets.get(key)
        if bucket is None:
            self._make_room(now, rate, burst, max_keys)
            bucket = self._buckets[key] = TokenBucket(burst, now)
        else:
            self._buckets.move_to_end(key)
        return bucket.take(now, rate, burst)

    def __len__(self) -> int:
        return len(self._buckets)

    def _make_room(self, now: float, rate: float, burst: float, max_keys: int) -> None:
        """Drop refilled buckets from the least recently used end, then the oldest ones over ``max_keys - 1``."""
        buckets = self._buckets
        while buckets:
            oldest = next(iter(buckets.values()))
            if oldest.level(now, rate, burst) < burst:
                break
            buckets.popitem(last=False)
        while len(buckets) >= max_keys:
            buckets.popitem(last=False)
