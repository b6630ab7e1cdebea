"""Reconnect delays: exponential backoff with jitter, so many daemons do not retry in step."""

from __future__ import annotations

import random
from collections.abc import Callable


class Backoff:
    """The delay before each reconnect attempt: doubling from ``initial_seconds`` up to ``max_seconds``.

    Each delay is drawn between half and all of its step ("equal jitter"): after
    Redis restarts, a fleet of daemons spreads its reconnects instead of arriving
    at once, and no delay is ever near zero.

    Args:
        initial_seconds: the first step.
        max_seconds: the largest step.
        uniform: a random number in [0, 1) (injected for tests).
    """

    def __init__(
        self, initial_seconds: float, max_seconds: float, uniform: Callable[[], float] = random.random
    ) -> None:
        self.initial_seconds = initial_seconds
        self.max_seconds = max_seconds
        self.uniform = uniform
        self.attempts = 0

    def next_delay(self) -> float:
        """The delay before the next attempt (and count the attempt)."""
        step: float = min(self.max_seconds, self.initial_seconds * 2.0 ** min(self.attempts, 64))
        self.attempts += 1
        jitter: float = self.uniform()
        return step / 2 + step / 2 * jitter

    def reset(self) -> None:
        """Connected: the next loss starts again from the first step."""
        self.attempts = 0
