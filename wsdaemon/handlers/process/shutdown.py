"""The ``process`` handler's part in the daemon's shutdown: no program outlives the daemon.

Rules for this file:

* An endpoint's :class:`EndPrograms` joins the daemon's service tree
  (``HandlerContext.services``) when the endpoint's first program is about to
  start, rather than a reactor trigger: the daemon stops it after every WebSocket
  has been drained, and waits for the Deferred it returns.
* Stopping sends SIGTERM to every program still running, and SIGKILL to those
  left after ``kill_timeout_seconds``; the wait ends as soon as the last one
  ended, or at the SIGKILL.
* A program whose connection closed earlier was already sent SIGTERM by its own
  handler; a second SIGTERM is harmless.
"""

from __future__ import annotations

from collections.abc import Set
from typing import TYPE_CHECKING

from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime

if TYPE_CHECKING:
    from wsdaemon.handlers.process.relay import ProcessHandler


class EndPrograms(Service):
    """Ends one endpoint's programs when the daemon stops.

    Args:
        handlers: the endpoint's connections holding a program slot (the factory's live set).
        kill_timeout_seconds: how long after SIGTERM a program is sent SIGKILL.
        reactor: the clock the SIGKILL is scheduled on.
    """

    def __init__(self, handlers: Set[ProcessHandler], kill_timeout_seconds: float, reactor: IReactorTime) -> None:
        self.handlers = handlers
        self.kill_timeout_seconds = kill_timeout_seconds
        self.reactor = reactor
        self._all_ended: Deferred[None] | None = None  # fired at shutdown once no program runs

    def stopService(self) -> Deferred[None] | None:
        """The daemon is stopping: end every program, and have it wait until they ended."""
        super().stopService()  # type: ignore[no-untyped-call]  # super(): mypy#16653
        return self.end_all()

    def end_all(self) -> Deferred[None] | None:
        """SIGTERM every program, SIGKILL those left after ``kill_timeout_seconds``.

        Returns:
            A Deferred that fires once all ended (or at the SIGKILL), for the daemon to
            wait on; None when no program runs.
        """
        running = [handler for handler in self.handlers if handler.running]
        if not running:
            return None
        ended: Deferred[None] = Deferred()
        self._all_ended = ended
        for handler in running:
            handler.signal_program("TERM")

        def kill() -> None:
            for handler in running:
                if handler.running:
                    handler.signal_program("KILL")
            if not ended.called:
                ended.callback(None)

        killer = self.reactor.callLater(self.kill_timeout_seconds, kill)
        return ended.addBoth(lambda result: killer.cancel() if killer.active() else None)

    def program_ended(self) -> None:
        """A program ended (or a slot was freed): the shutdown wait is over once none runs."""
        ended = self._all_ended
        if ended is not None and not ended.called and not any(handler.running for handler in self.handlers):
            ended.callback(None)
