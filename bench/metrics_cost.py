"""What counting for /metrics costs: in-process timings, no sockets, no reactor loop.

The figures behind ``/metrics`` are plain integers the wire protocol already
keeps for its summary line; an endpoint reads them only at scrape time. This
measures that claim:

* ``echo64``: one 64-byte echo through the wire protocol with the endpoint's
  stats attached, then with none (``stats=None``): the per-message path is the
  same code, so the ratio should be 1.00 within noise; a control pair (two
  protocols without stats) shows how large the noise of the run is.
* ``counting``: the four integer additions a message costs (bytes and messages,
  in and out) on their own, as a share of ``echo64``.
* ``open+close``: what a connection costs the stats once in its life (joining
  the endpoint's open set, folding its totals and close code at the end).
* ``scrape``: snapshot and render with 1,000 open connections on 2 endpoints
  (paid by the scraper, once per scrape, never per message).

    python bench/metrics_cost.py [--repeat 9] [--number 100000]

Each figure is the best of ``--repeat`` runs.
"""

from __future__ import annotations

import argparse
import timeit
from typing import Any

from inprocess import NullTransport, client_frame
from twisted.internet.testing import MemoryReactorClock

from wsdaemon.adapter.protocol import WebSocketWireProtocol
from wsdaemon.core import Connection, Side
from wsdaemon.core.frames import Opcode
from wsdaemon.handlers.echo import EchoProtocol
from wsdaemon.metrics import render
from wsdaemon.stats import DaemonStats, EndpointStats


def wire(stats: EndpointStats | None) -> WebSocketWireProtocol:
    """An echoing server-side wire protocol after negotiation, counting into ``stats`` (or nowhere)."""
    protocol = WebSocketWireProtocol(EchoProtocol(), Connection(Side.SERVER), MemoryReactorClock(), stats=stats)
    protocol.makeConnection(NullTransport())
    protocol.finishNegotiation()
    return protocol


def best(func: Any, number: int, repeat: int) -> float:
    """Seconds per call, best of ``repeat`` runs of ``number`` calls."""
    return min(timeit.repeat(func, number=number, repeat=repeat)) / number


def paired(first: Any, second: Any, number: int, repeat: int) -> tuple[float, float]:
    """Seconds per call of each, best of ``repeat`` runs taken in turn, after a warm-up of both.

    The order alternates from run to run, so load on the machine (and whatever the first run
    after a switch pays) hits both alike.
    """
    funcs = (first, second)
    times: tuple[list[float], list[float]] = ([], [])
    for func in funcs:
        timeit.timeit(func, number=number)
    for run in range(repeat):
        for which in (0, 1) if run % 2 == 0 else (1, 0):
            times[which].append(timeit.timeit(funcs[which], number=number))
    return min(times[0]) / number, min(times[1]) / number


def counting_only() -> Any:
    """The per-message additions alone, on a wire protocol's own attributes."""
    protocol = wire(None)

    def once() -> None:
        protocol.bytes_in += 70
        protocol.messages_in += 1
        protocol.messages_out += 1
        protocol.bytes_out += 66

    return once


def open_close(stats: EndpointStats) -> Any:
    """One connection joining and leaving the endpoint's stats."""
    protocol = wire(None)

    def once() -> None:
        stats.opened(protocol)
        stats.closed(protocol, 1000)

    return once


def scrape(connections: int) -> Any:
    """A daemon with ``connections`` open connections on two endpoints, scraped."""
    stats = DaemonStats()
    for index in range(connections):
        stats.endpoint("/echo" if index % 2 else "/chat").opened(wire(None))
    return lambda: render([(None, stats.snapshot({}, "local"))])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument("--number", type=int, default=100_000)
    args = parser.parse_args()
    frame = client_frame(Opcode.TEXT, b"x" * 64)
    with_stats, without, control = wire(EndpointStats()), wire(None), wire(None)
    counted, uncounted = paired(
        lambda: with_stats.dataReceived(frame), lambda: without.dataReceived(frame), args.number, args.repeat
    )
    same, again = paired(
        lambda: control.dataReceived(frame), lambda: without.dataReceived(frame), args.number, args.repeat
    )
    additions = best(counting_only(), args.number, args.repeat)
    lifetime = best(open_close(EndpointStats()), args.number, args.repeat)
    scraped = best(scrape(1000), max(1, args.number // 1000), args.repeat)
    print(f"echo64 with stats     {counted * 1e6:8.3f} us/msg")
    print(f"echo64 without stats  {uncounted * 1e6:8.3f} us/msg   ratio {counted / uncounted:.3f}")
    print(f"control: two without  {same * 1e6:8.3f} us/msg   ratio {same / again:.3f} (the noise of this run)")
    print(f"counting (4 adds)     {additions * 1e9:8.1f} ns/msg   {additions / counted:.1%} of echo64")
    print(f"open+close            {lifetime * 1e6:8.3f} us/connection")
    print(f"scrape, 1000 conns    {scraped * 1e3:8.3f} ms/scrape")


if __name__ == "__main__":
    main()
