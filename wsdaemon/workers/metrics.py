"""``/metrics`` across workers: each worker's figures, whichever process answers the scrape.

With workers, a scrape on the shared port lands on one worker, chosen by the
kernel. So that it shows every worker:

* each worker sends its snapshot (:mod:`wsdaemon.stats`, as JSON) to the main
  process with every heartbeat (:data:`~MessageKind.STATS`), when metrics are on;
* the main process keeps the latest of each worker (:class:`WorkerFigures`) and
  forgets a worker that exited (its replacement starts from zero: a counter reset,
  which Prometheus expects);
* the worker that gets a scrape asks for them (:data:`~MessageKind.STATS_QUERY`),
  puts its own fresh snapshot in place of its reported one, and renders all of
  them, each labelled ``worker="N"``; if no answer comes in time it shows its own;
* ``[metrics] listen``, with workers, is served by the main process from the same store.

So another worker's figures are at most one heartbeat interval old.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Sequence
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger

from wsdaemon.metrics import Labelled
from wsdaemon.stats import Snapshot
from wsdaemon.workers.channel import ChannelError, MessageKind, encode

#: How long a scraped worker waits for the main process's answer before showing only its own figures.
QUERY_TIMEOUT_SECONDS = 5.0


def labelled(figures: dict[int, Snapshot]) -> list[Labelled]:
    """Snapshots by worker number, as the collector takes them (in worker order)."""
    return [(str(index), figures[index]) for index in sorted(figures)]


def _decode(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError as error:
        raise ChannelError(f"metrics message is not JSON: {error}") from None


class MetricsLink:
    """A worker's end: it reports its figures and asks for everyone's when scraped.

    Args:
        send: writes one encoded message to the main process.
        worker: this worker's number.
        reactor: times the wait for an answer.
    """

    log = Logger()

    def __init__(self, send: Callable[[bytes], None], worker: int, reactor: Any) -> None:
        self.send = send
        self.worker = worker
        self.reactor = reactor
        self.snapshot: Callable[[], Snapshot] | None = None
        self._numbers = itertools.count(1)
        self._pending: dict[int, tuple[Deferred[Sequence[Labelled]], Any]] = {}

    def share(self, snapshot: Callable[[], Snapshot]) -> Callable[[], Deferred[Sequence[Labelled]]]:
        """Take this process's snapshot function; return the gather its ``/metrics`` uses (``build_service``)."""
        self.snapshot = snapshot
        return self.gather

    def report(self) -> None:
        """Send this worker's figures now (called with each heartbeat)."""
        if self.snapshot is not None:
            self.send(encode(MessageKind.STATS, json.dumps(self.snapshot()).encode()))

    def gather(self) -> Deferred[Sequence[Labelled]]:
        """Every worker's figures: ask the main process, this worker's own fresh."""
        number = next(self._numbers)
        answer: Deferred[Sequence[Labelled]] = Deferred()
        timer = self.reactor.callLater(QUERY_TIMEOUT_SECONDS, self._timed_out, number)
        self._pending[number] = (answer, timer)
        self.send(encode(MessageKind.STATS_QUERY, str(number).encode()))
        return answer

    def received(self, kind: MessageKind, body: bytes) -> bool:
        """Handle an answer from the main process; False for a kind that is not the metrics'.

        Raises:
            ChannelError: the answer is not what the main process sends.
        """
        if kind is not MessageKind.STATS_ANSWER:
            return False
        data = _decode(body)
        if (
            not isinstance(data, dict)
            or not isinstance(data.get("id"), int)
            or not isinstance(data.get("workers"), dict)
        ):
            raise ChannelError("metrics answer without id and workers")
        workers = data["workers"]
        if not all(isinstance(index, str) and index.isdigit() for index in workers):
            raise ChannelError("metrics answer with a worker that is not a number")
        pending = self._pending.pop(data["id"], None)
        if pending is not None:  # else: it came after the timeout, which answered already
            answer, timer = pending
            timer.cancel()
            answer.callback(self._with_own({int(index): figures for index, figures in workers.items()}))
        return True

    def _with_own(self, figures: dict[int, Snapshot]) -> list[Labelled]:
        if self.snapshot is not None:
            figures[self.worker] = self.snapshot()
        return labelled(figures)

    def _timed_out(self, number: int) -> None:
        pending = self._pending.pop(number, None)
        if pending is not None:
            self.log.warn(
                "the main process did not answer a metrics query within {seconds} s; showing this worker's only",
                seconds=QUERY_TIMEOUT_SECONDS,
            )
            pending[0].callback(self._with_own({}))


class WorkerFigures:
    """The main process's end: the latest figures of each worker, and the answers to queries."""

    def __init__(self) -> None:
        self.latest: dict[int, Snapshot] = {}

    def received(self, worker: int, kind: MessageKind, body: bytes, reply: Callable[[bytes], None]) -> bool:
        """Store a report or answer a query from ``worker``; False for a kind that is not the metrics'.

        Raises:
            ChannelError: the message is not what a worker sends.
        """
        if kind is MessageKind.STATS:
            figures = _decode(body)
            if not isinstance(figures, dict):
                raise ChannelError("metrics report is not a JSON object")
            self.latest[worker] = figures
            return True
        if kind is MessageKind.STATS_QUERY:
            if not body.isdigit():
                raise ChannelError("metrics query without a number")
            answer = {"id": int(body), "workers": {str(index): figures for index, figures in self.latest.items()}}
            reply(encode(MessageKind.STATS_ANSWER, json.dumps(answer).encode()))
            return True
        return False

    def forget(self, worker: int) -> None:
        """A worker exited: its figures go with it."""
        self.latest.pop(worker, None)

    def gather(self) -> Deferred[Sequence[Labelled]]:
        """Every worker's latest figures (the main process's own ``[metrics] listen``)."""
        return succeed(labelled(self.latest))
