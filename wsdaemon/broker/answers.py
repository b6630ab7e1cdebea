"""The answers a linked broker awaits from its link (positions, history reads): bounded, failures in our words.

Rules for this file:

* At most ``bound`` answers are awaited at once (the broker's
  ``max_pending_messages``): a slow or stuck link cannot make them pile up. A
  question beyond that, or asked while the link is down, fails at once with
  :class:`~wsdaemon.broker.interface.HistoryUnavailable` (HTTP 503).
* Until the link's first connection attempt has ended (a daemon that just
  started), a question waits for it instead of failing: the first clients of a
  new daemon are not told "try again later" for the milliseconds its broker
  takes to connect. Held questions count against ``bound`` too, and the wait
  is bounded by the attempt's own timeouts (``connect_timeout_seconds`` a step).
* Whatever the link fails with becomes ``HistoryUnavailable`` with one of our
  sentences (the link's own words may name hosts); the cause is logged once
  per outage, not once per question.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from twisted.internet.defer import Deferred, fail, maybeDeferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from wsdaemon.broker.interface import HistoryUnavailable

_T = TypeVar("_T")


class AwaitedAnswers:
    """Counts the answers awaited from one link, and words their failures.

    Args:
        description: the broker's, for the log.
        bound: answers awaited at most.
    """

    log = Logger()

    def __init__(self, description: str, bound: int) -> None:
        self.description = description
        self.bound = bound
        self.awaited = 0
        self._failure_logged = False
        #: True from the link's start until its first connection attempt has ended.
        self.starting = False
        self._held: list[tuple[Callable[[], Deferred[object]], Deferred[object]]] = []

    def gate(self, up: bool, down: str, question: Callable[[], Deferred[_T]]) -> Deferred[_T] | None:
        """None if a question may be asked now; else its answer: held for the first attempt, or refused.

        While the link's first attempt is under way, ``question()`` is called once that attempt
        ended (it then passes this gate again); otherwise the refusal is ``down`` while the link
        is down, or "too many" when ``bound`` answers are awaited.
        """
        if self.awaited + len(self._held) >= self.bound:
            return fail(
                HistoryUnavailable(f"{self.bound} answers from the broker are already awaited (max_pending_messages)")
            )
        if self.starting:
            waiting: Deferred[_T] = Deferred()
            self._held.append((question, waiting))  # type: ignore[arg-type]  # each pair agrees on its own type
            return waiting
        return None if up else fail(HistoryUnavailable(down))

    def started(self) -> None:
        """The first attempt ended (the link is up, failed, or stopped): ask the held questions, in order."""
        self.starting = False
        held, self._held = self._held, []
        for question, waiting in held:
            maybeDeferred(question).chainDeferred(waiting)

    def ask(self, question: Callable[[], Deferred[_T]], what: str) -> Deferred[_T]:
        """Ask (``question()`` sends it), counting the answer until it comes; a failure says we could not ``what``."""
        self.awaited += 1
        answer: Deferred[_T] = maybeDeferred(question)  # a link that raises must not leak the count
        return answer.addErrback(self._unavailable, what).addBoth(self._answered)

    def link_up(self) -> None:
        """The link is back: the next failure is logged again."""
        self._failure_logged = False

    def _answered(self, result: _T) -> _T:
        self.awaited -= 1
        return result

    def _unavailable(self, failure: Failure, what: str) -> Failure:
        if failure.check(HistoryUnavailable):
            return failure
        if not self._failure_logged:
            self._failure_logged = True
            self.log.warn(
                "broker {broker}: could not {what} ({reason}); publishes and recoveries on channels with history "
                "fail with 503 until it answers again",
                broker=self.description,
                what=what,
                reason=failure.getErrorMessage() or type(failure.value).__name__,
            )
        return Failure(HistoryUnavailable(f"the broker could not {what}"))
