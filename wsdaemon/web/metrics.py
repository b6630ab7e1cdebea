"""``/metrics``: the scrape's Resource, open only to ``[metrics] allowed_networks``.

The figures come from a *gather* function: in a single process it returns this
process's snapshot at once; in a worker it asks the main process for every
worker's latest (a Deferred). Either way the scrape is rendered by
:func:`wsdaemon.metrics.render` when they arrive.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Sequence

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request, Site

from wsdaemon.admission import client_address
from wsdaemon.config import METRICS_PATH
from wsdaemon.metrics import CONTENT_TYPE, Labelled, render
from wsdaemon.stats import Snapshot
from wsdaemon.web.request import DaemonRequest
from wsdaemon.web.site import PathNode

#: Fetches what a scrape shows: every process's snapshot, labelled by worker (None: a single process).
Gather = Callable[[], Deferred[Sequence[Labelled]]]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(texts: Sequence[str]) -> tuple[Network, ...]:
    """The networks of ``[metrics] allowed_networks`` (validated by the config already)."""
    return tuple(ipaddress.ip_network(text) for text in texts)


def allowed(host: str, networks: Sequence[Network]) -> bool:
    """Whether the client address ``host`` is in one of ``networks`` (an IPv4-mapped IPv6 address as IPv4)."""
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False  # a UNIX socket peer or no address: not a network we can match
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in network for network in networks)


class MetricsResource(Resource):
    """Serves the Prometheus text format to clients in ``networks``; 403 (plain text) to anyone else."""

    isLeaf = True
    log = Logger()

    def __init__(self, gather: Gather, networks: Sequence[Network]) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # super(): mypy#16653
        self.gather = gather
        self.networks = tuple(networks)

    def render_GET(self, request: Request) -> bytes | int:
        """The metrics (HEAD is answered from this too); 403 outside the allowed networks."""
        request.setHeader("Cache-Control", "no-store")
        client = client_address(request)  # the admission's answer: behind a trusted proxy, the client
        if not allowed(client.host, self.networks):
            request.setResponseCode(403)
            request.setHeader("Content-Type", "text/plain; charset=utf-8")
            return b"metrics are not served to this address\n"
        gone: list[Failure] = []
        request.notifyFinish().addErrback(gone.append)  # the scraper went away: nothing to write
        gathering = self.gather()
        gathering.addCallback(self._answer, request, gone)
        gathering.addErrback(self._failed, request, gone)  # a failed gather, or figures that do not render
        return NOT_DONE_YET

    def _answer(self, snapshots: Sequence[Labelled], request: Request, gone: list[Failure]) -> None:
        if gone:
            return
        body = render(snapshots)
        request.setHeader("Content-Type", CONTENT_TYPE)
        request.setHeader("Content-Length", str(len(body)))
        if request.method != b"HEAD":
            request.write(body)
        request.finish()

    def _failed(self, failure: Failure, request: Request, gone: list[Failure]) -> None:
        self.log.failure("gathering metrics failed", failure)
        if gone:
            return
        request.setResponseCode(500)
        request.setHeader("Content-Type", "text/plain; charset=utf-8")
        request.write(b"internal error\n")
        request.finish()


def local_gather(snapshot: Callable[[], Snapshot]) -> Gather:
    """The gather of a single process: its own snapshot, unlabelled, at once."""
    return lambda: succeed([(None, snapshot())])


def metrics_site(metrics: MetricsResource, reactor: IReactorTime) -> Site:
    """The Site of ``[metrics] listen``: ``/metrics`` and nothing else (404)."""
    root = PathNode()
    root.putChild(METRICS_PATH.strip("/").encode(), metrics)
    site = Site(root, reactor=reactor)
    site.requestFactory = DaemonRequest
    site.displayTracebacks = False
    return site
