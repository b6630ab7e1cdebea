"""Writes made outside a read (broadcasts, timers, backend pushes) leave once per connection and reactor turn.

See :mod:`wsdaemon.adapter.immediate` for why the adapter sends at once at all.
"""

from __future__ import annotations

from typing import Protocol

from twisted.internet.interfaces import IDelayedCall, IReactorTime


class Flushable(Protocol):
    """A connection that can write what it has queued, at once."""

    def flush_now(self) -> None:
        """Send what is queued, at once."""


class TurnWriter:
    """Gathers the connections written to outside a read and sends to each once, at the end of the turn.

    A broadcast writes to many members from one read (the publisher's, a
    worker relay's, Redis's). Each member's frames wait until the reactor has
    handled every event of this turn (a ``callLater(0)``: one per turn, not
    per member), and then go out with
    :func:`~wsdaemon.adapter.immediate.send_now`: several publishes in
    one turn still reach a member in one ``send``, as with Twisted's deferred
    write, without the two ``epoll_ctl`` calls and the reactor dispatch per
    member that it costs. At most ``max_bytes`` wait per connection (the
    endpoint's ``write_buffer_high_bytes``); beyond that :meth:`add` says to
    write at once, so the backpressure accounting sees every byte as before.
    """

    __slots__ = ("_call", "_due", "_reactor", "max_bytes")

    def __init__(self, reactor: IReactorTime, max_bytes: int) -> None:
        self._reactor = reactor
        self.max_bytes = max_bytes
        self._due: dict[Flushable, int] = {}  # bytes waiting; insertion-ordered: written in the order first touched
        self._call: IDelayedCall | None = None

    def add(self, connection: Flushable, size: int) -> bool:
        """Write ``size`` more bytes of ``connection`` at the end of this turn; False: too much waits, write now."""
        due = self._due
        waiting = due.get(connection, 0) + size
        if waiting > self.max_bytes:
            due.pop(connection, None)  # the caller writes everything queued, this message included
            return False
        due[connection] = waiting
        if self._call is None:
            self._call = self._reactor.callLater(0, self._write_all)
        return True

    def __len__(self) -> int:
        return len(self._due)

    def _write_all(self) -> None:
        self._call = None
        due, self._due = self._due, {}
        for connection in due:
            connection.flush_now()
