"""wsdaemon.metrics: snapshots of plain counters rendered in the Prometheus text format, parsed back."""

from __future__ import annotations

import ast
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from wsdaemon.metrics import render
from wsdaemon.stats import RTT_BUCKETS, DaemonStats


class FakeConnection:
    """What an endpoint reads off an open connection: four plain counters."""

    def __init__(self, bytes_in: int = 0, bytes_out: int = 0, messages_in: int = 0, messages_out: int = 0) -> None:
        self.bytes_in, self.bytes_out = bytes_in, bytes_out
        self.messages_in, self.messages_out = messages_in, messages_out


def parsed(text: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample, by (name, sorted labels), as Prometheus would read the scrape."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text.decode("utf-8"))
        for sample in family.samples
    }


def sample(found: dict, name: str, **labels: str) -> float | None:
    return found.get((name, tuple(sorted(labels.items()))))


def test_open_and_closed_connections_both_count():
    """Totals are the closed connections' folded counts plus what the open ones counted so far."""
    stats = DaemonStats()
    echo = stats.endpoint("/echo")
    gone, alive = FakeConnection(100, 200, 3, 4), FakeConnection(10, 20, 1, 2)
    echo.opened(gone)
    echo.opened(alive)
    echo.closed(gone, 1000)
    found = parsed(render([(None, stats.snapshot({}, "local"))]))
    assert sample(found, "wsdaemon_connections_open", endpoint="/echo") == 1
    assert sample(found, "wsdaemon_bytes_received_total", endpoint="/echo") == 110
    assert sample(found, "wsdaemon_bytes_sent_total", endpoint="/echo") == 220
    assert sample(found, "wsdaemon_messages_received_total", endpoint="/echo") == 4
    assert sample(found, "wsdaemon_messages_sent_total", endpoint="/echo") == 6
    assert sample(found, "wsdaemon_close_codes_total", endpoint="/echo", code="1000") == 1
    assert sample(found, "wsdaemon_handshakes_total", endpoint="/echo", result="accepted") == 2


def test_a_connection_closed_twice_is_folded_once():
    """A second close of the same connection adds nothing (its totals are in already)."""
    stats = DaemonStats()
    echo = stats.endpoint("/echo")
    connection = FakeConnection(5, 5, 1, 1)
    echo.opened(connection)
    echo.closed(connection, 1000)
    echo.closed(connection, 1000)
    snapshot = stats.snapshot({}, None)["endpoints"]["/echo"]
    assert snapshot["bytes_in"] == 5
    assert snapshot["close_codes"] == {"1000": 1}


def test_refusals_are_labelled_with_their_status():
    """A refused upgrade counts under result="401", "429", "503"... beside "accepted"."""
    stats = DaemonStats()
    for status in (401, 401, 503):
        stats.endpoint("/chat").refused(status)
    found = parsed(render([(None, stats.snapshot({}, None))]))
    assert sample(found, "wsdaemon_handshakes_total", endpoint="/chat", result="401") == 2
    assert sample(found, "wsdaemon_handshakes_total", endpoint="/chat", result="503") == 1
    assert sample(found, "wsdaemon_handshakes_total", endpoint="/chat", result="accepted") is None


def test_the_same_endpoint_path_keeps_its_stats():
    """A reload builds a new tree, but the path's stats object (and its counts) is the same."""
    stats = DaemonStats()
    assert stats.endpoint("/echo") is stats.endpoint("/echo")


def test_ping_rtt_is_a_cumulative_histogram():
    """Round trips land in fixed buckets; the rendered buckets are cumulative, with sum and count."""
    stats = DaemonStats()
    rtt = stats.endpoint("/echo").ping_rtt
    for seconds in (0.0005, 0.003, 0.003, 60.0):
        rtt.observe(seconds)
    found = parsed(render([(None, stats.snapshot({}, None))]))
    assert sample(found, "wsdaemon_ping_rtt_seconds_bucket", endpoint="/echo", le="0.001") == 1
    assert sample(found, "wsdaemon_ping_rtt_seconds_bucket", endpoint="/echo", le="0.005") == 3
    assert sample(found, "wsdaemon_ping_rtt_seconds_bucket", endpoint="/echo", le=repr(RTT_BUCKETS[-1])) == 3
    assert sample(found, "wsdaemon_ping_rtt_seconds_bucket", endpoint="/echo", le="+Inf") == 4
    assert sample(found, "wsdaemon_ping_rtt_seconds_count", endpoint="/echo") == 4
    assert sample(found, "wsdaemon_ping_rtt_seconds_sum", endpoint="/echo") == 60.0065


def test_broadcast_drops_are_read_from_the_factory_by_policy():
    """A handler factory's ``dropped`` mapping shows as wsdaemon_broadcast_dropped_total{policy}."""

    class Factory:
        dropped = {"drop-oldest": 7}

    stats = DaemonStats()
    stats.endpoint("/chat")
    found = parsed(render([(None, stats.snapshot({"/chat": Factory()}, None))]))
    assert sample(found, "wsdaemon_broadcast_dropped_total", endpoint="/chat", policy="drop-oldest") == 7


def test_broker_link_state_is_a_gauge():
    """The broker's link: 1 while up (or in-process), 0 while down, labelled with the state."""
    down = parsed(render([(None, DaemonStats().snapshot({}, "down"))]))
    up = parsed(render([(None, DaemonStats().snapshot({}, "up"))]))
    assert sample(down, "wsdaemon_broker_link_up", state="down") == 0
    assert sample(up, "wsdaemon_broker_link_up", state="up") == 1


def test_workers_get_a_worker_label():
    """With snapshots from several workers, every series carries worker="N", one per worker."""
    first, second = DaemonStats(), DaemonStats()
    first.endpoint("/echo").opened(FakeConnection(messages_in=2))
    second.endpoint("/echo").opened(FakeConnection(messages_in=5))
    found = parsed(render([("1", first.snapshot({}, "up")), ("2", second.snapshot({}, "up"))]))
    assert sample(found, "wsdaemon_messages_received_total", endpoint="/echo", worker="1") == 2
    assert sample(found, "wsdaemon_messages_received_total", endpoint="/echo", worker="2") == 5
    assert sample(found, "wsdaemon_broker_link_up", state="up", worker="2") == 1
    assert sample(found, "wsdaemon_messages_received_total", endpoint="/echo") is None


def test_only_wsdaemon_metrics_imports_prometheus_client():
    """prometheus_client stays in one module: every other one counts in plain integers."""
    package = Path(__file__).resolve().parents[1] / "wsdaemon"
    importers = set()
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            if any(name.split(".")[0] == "prometheus_client" for name in names):
                importers.add(path.relative_to(package).as_posix())
    assert importers == {"metrics.py"}
