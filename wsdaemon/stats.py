"""What the daemon has done, in plain integers, read only when someone asks (a ``/metrics`` scrape).

Rules for this module:

* Nothing here runs per message. The wire protocol already counts bytes and
  messages in plain ints for its summary line; an endpoint's :class:`EndpointStats`
  holds its open connections, adds theirs up at scrape time, and folds a
  connection's totals into its own when it closes. What *is* counted here
  (handshakes, close codes, pong round trips) happens once per connection or once
  per keepalive ping.
* Stats outlive a reload: the daemon's :class:`DaemonStats` hands each endpoint
  path the same object for its life, so counters never go back.
* A snapshot is plain JSON-able data (str keys, ints and floats): the same value
  a worker sends its supervisor, and what :mod:`wsdaemon.metrics` renders.
  Stdlib only; nothing here imports ``prometheus_client``.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter
from collections.abc import Mapping
from typing import Any, Protocol

#: Upper bounds (seconds) of the ping round-trip histogram's buckets; +Inf is implied.
RTT_BUCKETS: tuple[float, ...] = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

#: A snapshot: what :meth:`DaemonStats.snapshot` returns (and a worker sends up as JSON).
Snapshot = dict[str, Any]


class Counted(Protocol):
    """What an endpoint reads off an open connection: the wire protocol's own counters."""

    bytes_in: int
    bytes_out: int
    messages_in: int
    messages_out: int


class RttHistogram:
    """Pong round trips in fixed buckets: one bisect and two additions per keepalive pong."""

    __slots__ = ("count", "counts", "total")

    def __init__(self) -> None:
        self.counts = [0] * (len(RTT_BUCKETS) + 1)  # per bucket, not cumulative; the last is +Inf
        self.total = 0.0
        self.count = 0

    def observe(self, seconds: float) -> None:
        """Count one round trip of ``seconds``."""
        self.counts[bisect_left(RTT_BUCKETS, seconds)] += 1
        self.total += seconds
        self.count += 1


class EndpointStats:
    """The counters of one endpoint: its open connections' and those of every connection it had."""

    __slots__ = (
        "bytes_in",
        "bytes_out",
        "close_codes",
        "handshakes",
        "live",
        "messages_in",
        "messages_out",
        "ping_rtt",
    )

    def __init__(self) -> None:
        self.live: set[Counted] = set()
        self.handshakes: Counter[str] = Counter()  # "accepted", or the refusal's HTTP status ("401", "503")
        self.close_codes: Counter[int] = Counter()
        self.bytes_in = self.bytes_out = self.messages_in = self.messages_out = 0  # of closed connections
        self.ping_rtt = RttHistogram()

    def refused(self, status: int) -> None:
        """An upgrade request answered with ``status`` instead of a 101."""
        self.handshakes[str(status)] += 1

    def opened(self, connection: Counted) -> None:
        """A connection switched to WebSocket: counted as accepted, its counters read until it closes."""
        self.handshakes["accepted"] += 1
        self.live.add(connection)

    def closed(self, connection: Counted, code: int) -> None:
        """A connection ended with close ``code``: its totals join the endpoint's."""
        if connection not in self.live:
            return
        self.live.discard(connection)
        self.close_codes[int(code)] += 1
        self.bytes_in += connection.bytes_in
        self.bytes_out += connection.bytes_out
        self.messages_in += connection.messages_in
        self.messages_out += connection.messages_out

    def snapshot(self, dropped: Mapping[str, int] | None = None) -> Snapshot:
        """The endpoint's counts now, open connections included (``dropped``: the handler's, by policy)."""
        totals = [self.bytes_in, self.bytes_out, self.messages_in, self.messages_out]
        for connection in self.live:
            totals[0] += connection.bytes_in
            totals[1] += connection.bytes_out
            totals[2] += connection.messages_in
            totals[3] += connection.messages_out
        rtt = self.ping_rtt
        return {
            "open": len(self.live),
            "handshakes": dict(self.handshakes),
            "bytes_in": totals[0],
            "bytes_out": totals[1],
            "messages_in": totals[2],
            "messages_out": totals[3],
            "close_codes": {str(code): count for code, count in self.close_codes.items()},
            "ping_rtt": {"counts": list(rtt.counts), "sum": rtt.total, "count": rtt.count},
            "dropped": dict(dropped or {}),
        }


class DaemonStats:
    """The stats of every endpoint of one daemon process, by path, for the process's life."""

    def __init__(self) -> None:
        self.endpoints: dict[str, EndpointStats] = {}

    def endpoint(self, path: str) -> EndpointStats:
        """The one :class:`EndpointStats` of ``path`` (the same after a reload)."""
        stats = self.endpoints.get(path)
        if stats is None:
            stats = self.endpoints[path] = EndpointStats()
        return stats

    def snapshot(self, factories: Mapping[str, Any], broker_state: str | None) -> Snapshot:
        """Everything now: each endpoint's counts and the broker's link state ("local", "up", "down").

        A handler factory may expose ``dropped``, a mapping of overflow policy to
        messages it dropped (``broadcast`` does); it is read here, at scrape time.
        """
        endpoints = {}
        for path, stats in self.endpoints.items():
            dropped = getattr(factories.get(path), "dropped", None)
            endpoints[path] = stats.snapshot(dropped if isinstance(dropped, Mapping) else None)
        return {"endpoints": endpoints, "broker": broker_state}
