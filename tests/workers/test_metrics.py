"""/metrics across workers: reports, queries and answers on the channel, on a memory clock (no process)."""

from __future__ import annotations

import json

import pytest
from twisted.internet.testing import MemoryReactorClock

from tests.workers.harness import Harness
from wsdaemon.workers.channel import ChannelError, MessageDecoder, MessageKind, encode
from wsdaemon.workers.metrics import QUERY_TIMEOUT_SECONDS, MetricsLink, WorkerFigures


def figures(messages: int) -> dict:
    """A snapshot with one endpoint that received ``messages`` messages."""
    return {"endpoints": {"/echo": {"messages_in": messages}}, "broker": "up"}


def decoded(sent: list[bytes]) -> list[tuple[MessageKind, bytes]]:
    return MessageDecoder().feed(b"".join(sent))


def test_a_report_carries_the_workers_snapshot():
    """With each heartbeat a worker sends STATS with its snapshot as JSON."""
    sent: list[bytes] = []
    link = MetricsLink(sent.append, 2, MemoryReactorClock())
    link.share(lambda: figures(3))
    link.report()
    assert decoded(sent) == [(MessageKind.STATS, json.dumps(figures(3)).encode())]


def test_a_scraped_worker_shows_every_worker_with_its_own_figures_fresh():
    """The answer's figures of the other workers are shown as reported; this worker's own are read now."""
    sent: list[bytes] = []
    link = MetricsLink(sent.append, 2, MemoryReactorClock())
    link.share(lambda: figures(9))
    result: list = []
    link.gather().addCallback(result.append)
    ((kind, number),) = decoded(sent)
    assert kind is MessageKind.STATS_QUERY
    answer = {"id": int(number), "workers": {"1": figures(4), "2": figures(1)}}
    assert link.received(MessageKind.STATS_ANSWER, json.dumps(answer).encode())
    assert result == [[("1", figures(4)), ("2", figures(9))]]


def test_without_an_answer_in_time_a_worker_shows_its_own():
    """If the main process does not answer within the timeout the scrape shows this worker alone."""
    clock = MemoryReactorClock()
    link = MetricsLink(lambda data: None, 1, clock)
    link.share(lambda: figures(5))
    result: list = []
    link.gather().addCallback(result.append)
    clock.advance(QUERY_TIMEOUT_SECONDS)
    assert result == [[("1", figures(5))]]
    late = {"id": 1, "workers": {"2": figures(7)}}
    assert link.received(MessageKind.STATS_ANSWER, json.dumps(late).encode())  # ignored: answered already
    assert result == [[("1", figures(5))]]


def test_the_main_process_answers_a_query_with_every_workers_latest():
    """WorkerFigures keeps each worker's latest report and sends them all back on a query."""
    store = WorkerFigures()
    replies: list[bytes] = []
    store.received(1, MessageKind.STATS, json.dumps(figures(1)).encode(), replies.append)
    store.received(2, MessageKind.STATS, json.dumps(figures(2)).encode(), replies.append)
    store.received(1, MessageKind.STATS, json.dumps(figures(10)).encode(), replies.append)
    store.received(2, MessageKind.STATS_QUERY, b"7", replies.append)
    ((kind, body),) = decoded(replies)
    assert kind is MessageKind.STATS_ANSWER
    assert json.loads(body) == {"id": 7, "workers": {"1": figures(10), "2": figures(2)}}


def test_the_supervisor_stores_reports_and_forgets_a_worker_that_exited():
    """Through the Supervisor: worker 1's report is answered to worker 2's query; once 1 exits, it is gone."""
    harness = Harness(count=2).started_ready()
    first, second = harness.current(1), harness.current(2)
    first.protocol.childDataReceived(3, encode(MessageKind.STATS, json.dumps(figures(6)).encode()))
    second.protocol.childDataReceived(3, encode(MessageKind.STATS_QUERY, b"1"))
    written = [data for fd, data in second.process.written if fd == 0]
    ((kind, body),) = MessageDecoder().feed(written[-1])
    assert kind is MessageKind.STATS_ANSWER and json.loads(body)["workers"] == {"1": figures(6)}
    first.dies(1)
    assert harness.supervisor.figures.latest == {}


def test_a_bad_metrics_message_breaks_the_channel():
    """A report that is not JSON is a broken peer: the supervisor kills that worker."""
    harness = Harness(count=2).started_ready()
    worker = harness.current(1)
    worker.protocol.childDataReceived(3, encode(MessageKind.STATS, b"{not json"))
    assert worker.process.signals == ["KILL"]


def test_a_malformed_answer_breaks_the_workers_channel():
    """An answer that is not JSON, or names a worker that is not a number, is a ChannelError."""
    link = MetricsLink(lambda data: None, 1, MemoryReactorClock())
    for body in (b"[1", json.dumps({"id": 1, "workers": {"x": {}}}).encode(), json.dumps({"id": 1}).encode()):
        with pytest.raises(ChannelError):
            link.received(MessageKind.STATS_ANSWER, body)
    assert not link.received(MessageKind.MESSAGE, b"")  # not the metrics': left to the relay
