"""Named timers for one connection, on an injected clock.

A connection has a few timers (handshake, close, idle...). Keeping them by name
in one place means ``connectionLost`` can cancel all of them at once, and a
test can drive them with ``MemoryReactorClock.advance``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.task import LoopingCall


class Deadlines:
    """A set of named, cancellable one-shot timers."""

    __slots__ = ("_calls", "_clock")

    def __init__(self, clock: IReactorTime) -> None:
        self._clock = clock
        self._calls: dict[str, IDelayedCall] = {}

    def set(self, name: str, seconds: float, callback: Callable[[], object]) -> None:
        """Arm ``name`` to call ``callback`` after ``seconds``, replacing any earlier one."""
        self.cancel(name)

        def fire() -> None:
            del self._calls[name]
            callback()

        self._calls[name] = self._clock.callLater(seconds, fire)

    def is_set(self, name: str) -> bool:
        """Whether ``name`` is armed and has not fired."""
        return name in self._calls

    def cancel(self, name: str) -> None:
        """Disarm ``name`` if it is armed."""
        call = self._calls.pop(name, None)
        if call is not None:
            call.cancel()

    def cancel_all(self) -> None:
        """Disarm everything (the connection is gone)."""
        calls, self._calls = self._calls, {}
        for call in calls.values():
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
