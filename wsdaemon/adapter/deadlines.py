"""Named timers for one connection, on an injected clock.

A connection has a few timers (handshake, close, idle...). Keeping them by name
in one place means ``connectionLost`` can cancel all of them at once, and a
test can drive them with ``MemoryReactorClock.advance``.
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.internet.interfaces import IDelayedCall, IReactorTime


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
