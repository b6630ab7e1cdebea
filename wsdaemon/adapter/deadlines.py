"""A connection's timers, on an injected clock: one precise deadline, and a shared ticker for the coarse ones.

Both take the clock they run on, so a test drives them with
``MemoryReactorClock.advance``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.task import LoopingCall


class Deadline:
    """One cancellable one-shot timer; setting it again replaces the earlier one.

    Each connection has at most one precise timer at a time (the handshake's,
    then the close handshake's); the coarse ones are the :class:`Ticker`'s.
    Two slots, no dict and no closure: an idle connection pays 48 bytes for it.
    """

    __slots__ = ("_call", "_clock")

    def __init__(self, clock: IReactorTime) -> None:
        self._clock = clock
        self._call: IDelayedCall | None = None

    def set(self, seconds: float, callback: Callable[[], object]) -> None:
        """Arm it to call ``callback`` after ``seconds``, replacing any earlier arming."""
        self.cancel()
        self._call = self._clock.callLater(seconds, callback)

    def is_set(self) -> bool:
        """Whether it is armed and has not fired."""
        return self._call is not None and self._call.active()

    def cancel(self) -> None:
        """Disarm it if it is armed."""
        call, self._call = self._call, None
        if call is not None and call.active():
            call.cancel()


class Tickable(Protocol):
    """Something with coarse deadlines, checked once per tick."""

    def tick(self, now: float) -> None:
        """Act on whatever deadline has passed by ``now``."""


class Ticker:
    """One periodic timer for the coarse deadlines of many connections (idle, keepalive).

    A timer per connection costs about half a KiB of memory each, and an idle
    connection is mostly timers; one shared tick costs nothing per connection
    and a few microseconds per connection per tick. Deadlines it drives fire
    up to ``interval_seconds`` late, which is fine for timeouts counted in
    tens of seconds. The loop runs only while it has members.
    """

    def __init__(self, clock: IReactorTime, interval_seconds: float = 1.0) -> None:
        self._clock = clock
        self.interval_seconds = interval_seconds
        self._members: set[Tickable] = set()
        self._loop: LoopingCall | None = None

    def add(self, member: Tickable) -> None:
        """Start ticking ``member``."""
        self._members.add(member)
        if self._loop is None:
            self._loop = LoopingCall(self._tick)
            self._loop.clock = self._clock
            self._loop.start(self.interval_seconds, now=False)

    def discard(self, member: Tickable) -> None:
        """Stop ticking ``member``; the loop stops with the last one."""
        self._members.discard(member)
        if not self._members and self._loop is not None:
            loop, self._loop = self._loop, None
            loop.stop()

    def __len__(self) -> int:
        return len(self._members)

    def _tick(self) -> None:
        now = self._clock.seconds()
        for member in list(self._members):
            member.tick(now)
