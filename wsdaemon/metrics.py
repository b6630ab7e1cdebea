"""``/metrics`` in the Prometheus text format: the only module that imports ``prometheus_client``.

The counting happens elsewhere, in plain integers (:mod:`wsdaemon.stats`); this
module turns snapshots of them into metric families at scrape time, through a
custom collector, so nothing on the hot path ever calls a metric object.

A scrape renders a list of ``(worker, snapshot)`` pairs: one pair, worker None,
in a single process; one per worker (labelled ``worker="0"``, ``"1"``...) when
the daemon runs workers, whichever of them answered the scrape.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from prometheus_client import generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry

from wsdaemon.stats import RTT_BUCKETS, Snapshot

__all__ = ["CONTENT_TYPE", "SnapshotCollector", "render"]

#: The Content-Type of a scrape's answer: the classic text format 0.0.4, which every Prometheus
#: version parses (``generate_latest`` writes it; our names need none of 1.0.0's escaping).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

#: Per-endpoint counters: (metric name without _total, snapshot key, help).
_ENDPOINT_COUNTERS = (
    ("wsdaemon_messages_received", "messages_in", "WebSocket messages received from clients"),
    ("wsdaemon_messages_sent", "messages_out", "WebSocket messages sent to clients"),
    ("wsdaemon_bytes_received", "bytes_in", "bytes received on WebSocket connections (frames, after the upgrade)"),
    ("wsdaemon_bytes_sent", "bytes_out", "bytes sent on WebSocket connections (frames, after the upgrade)"),
)

#: (worker label or None, snapshot): what one scrape renders.
Labelled = tuple[str | None, Snapshot]


class SnapshotCollector(Collector):
    """Metric families built from the snapshots ``snapshots`` holds, when the registry collects."""

    def __init__(self, snapshots: Sequence[Labelled]) -> None:
        self.snapshots = snapshots
        self.worker = any(worker is not None for worker, _ in snapshots)

    def collect(self) -> Iterator[Metric]:
        """Every family, each with one sample per endpoint (and worker)."""
        yield from self._endpoint_families()
        yield self._ping_rtt()
        yield self._broker()

    def _labels(self, *names: str) -> list[str]:
        return [*names, "worker"] if self.worker else list(names)

    def _values(self, worker: str | None, *values: str) -> list[str]:
        return [*values, worker or ""] if self.worker else list(values)

    def _endpoint_families(self) -> Iterator[Metric]:
        labels = self._labels("endpoint")
        opened = GaugeMetricFamily("wsdaemon_connections_open", "open WebSocket connections", labels=labels)
        counters = [(CounterMetricFamily(name, text, labels=labels), key) for name, key, text in _ENDPOINT_COUNTERS]
        handshakes = CounterMetricFamily(
            "wsdaemon_handshakes",
            "upgrade requests: accepted, or the refusal's HTTP status",
            labels=self._labels("endpoint", "result"),
        )
        codes = CounterMetricFamily(
            "wsdaemon_close_codes",
            "closed WebSocket connections by close code",
            labels=self._labels("endpoint", "code"),
        )
        dropped = CounterMetricFamily(
            "wsdaemon_broadcast_dropped",
            "messages a slow broadcast member never got, by overflow policy",
            labels=self._labels("endpoint", "policy"),
        )
        for worker, snapshot in self.snapshots:
            for path, stats in sorted(snapshot.get("endpoints", {}).items()):
                opened.add_metric(self._values(worker, path), stats["open"])
                for family, key in counters:
                    family.add_metric(self._values(worker, path), stats[key])
                for table, family in (("handshakes", handshakes), ("close_codes", codes), ("dropped", dropped)):
                    for label, count in sorted(stats[table].items()):
                        family.add_metric(self._values(worker, path, label), count)
        yield opened
        yield handshakes
        for family, _ in counters:
            yield family
        yield codes
        yield dropped

    def _ping_rtt(self) -> Metric:
        family = HistogramMetricFamily(
            "wsdaemon_ping_rtt_seconds", "keepalive ping to pong round trip", labels=self._labels("endpoint")
        )
        bounds = [repr(bound) for bound in RTT_BUCKETS] + ["+Inf"]
        for worker, snapshot in self.snapshots:
            for path, stats in sorted(snapshot.get("endpoints", {}).items()):
                rtt = stats["ping_rtt"]
                running, buckets = 0, []
                for bound, count in zip(bounds, rtt["counts"], strict=True):
                    running += count
                    buckets.append((bound, running))
                family.add_metric(self._values(worker, path), buckets, rtt["sum"])
        return family

    def _broker(self) -> Metric:
        family = GaugeMetricFamily(
            "wsdaemon_broker_link_up",
            "1 while the broker reaches the other processes (in-process broker: always 1)",
            labels=self._labels("state"),
        )
        for worker, snapshot in self.snapshots:
            state = snapshot.get("broker")
            if state is not None:
                family.add_metric(self._values(worker, state), 0 if state == "down" else 1)
        return family


def render(snapshots: Sequence[Labelled]) -> bytes:
    """The text format of ``snapshots``: what a scrape gets."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(snapshots))
    return generate_latest(registry)
