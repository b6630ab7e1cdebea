"""wsdaemon.web.metrics: who may scrape, and what a scrape gets (DummyRequest, no socket)."""

from __future__ import annotations

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.defer import Deferred, succeed
from twisted.web.server import NOT_DONE_YET
from twisted.web.test.requesthelper import DummyRequest

from wsdaemon.stats import DaemonStats
from wsdaemon.web.metrics import MetricsResource, allowed, local_gather, parse_networks

LOOPBACK = parse_networks(["127.0.0.0/8", "::1/128"])


def scrape(resource: MetricsResource, host: str = "127.0.0.1", method: bytes = b"GET") -> DummyRequest:
    """One request from ``host``, rendered (and finished, when the gather answers at once)."""
    request = DummyRequest([b"metrics"])
    request.method = method
    request.client = IPv6Address("TCP", host, 5000) if ":" in host else IPv4Address("TCP", host, 5000)
    answer = resource.render(request)
    if answer is not NOT_DONE_YET:
        request.write(answer)
        request.finish()
    return request


def echo_stats() -> DaemonStats:
    stats = DaemonStats()
    stats.endpoint("/echo").refused(426)
    return stats


def test_a_loopback_client_gets_the_text_format():
    """From 127.0.0.1 a scrape is 200 with Prometheus' content type and the daemon's series."""
    stats = echo_stats()
    request = scrape(MetricsResource(local_gather(lambda: stats.snapshot({}, "local")), LOOPBACK))
    assert request.responseCode in (None, 200)
    assert request.responseHeaders.getRawHeaders(b"content-type")[0].startswith(b"text/plain; version=0.0.4")
    assert b'wsdaemon_handshakes_total{endpoint="/echo",result="426"} 1.0' in b"".join(request.written)


def test_a_client_outside_the_allowed_networks_gets_403():
    """From 192.0.2.7 with loopback-only networks: 403 and no figures."""
    request = scrape(MetricsResource(local_gather(lambda: echo_stats().snapshot({}, None)), LOOPBACK), "192.0.2.7")
    assert request.responseCode == 403
    assert b"wsdaemon_" not in b"".join(request.written)


def test_head_gets_the_headers_without_the_body():
    """HEAD /metrics: the length of the scrape, no body."""
    request = scrape(MetricsResource(local_gather(lambda: echo_stats().snapshot({}, None)), LOOPBACK), method=b"HEAD")
    assert int(request.responseHeaders.getRawHeaders(b"content-length")[0]) > 0
    assert request.written == []


def test_the_scrape_waits_for_a_gather_that_answers_later():
    """A worker's gather answers after asking the main process: the request is finished then."""
    pending: Deferred = Deferred()
    request = scrape(MetricsResource(lambda: pending, LOOPBACK))
    assert request.finished == 0
    pending.callback([("1", echo_stats().snapshot({}, "up"))])
    assert request.finished == 1
    assert b'worker="1"' in b"".join(request.written)


def test_a_failing_gather_is_a_500_without_details():
    """If gathering fails, the scraper gets 500 "internal error"; the traceback goes to the log only."""
    request = scrape(MetricsResource(lambda: succeed(None).addCallback(lambda _: 1 / 0), LOOPBACK))
    assert request.responseCode == 500
    assert b"".join(request.written) == b"internal error\n"


def test_allowed_matches_networks_and_mapped_addresses():
    """IPv4, IPv6 and IPv4-mapped IPv6 addresses match their networks; anything else does not."""
    networks = parse_networks(["10.0.0.0/8", "::1/128"])
    assert allowed("10.1.2.3", networks)
    assert allowed("::ffff:10.1.2.3", networks)
    assert allowed("::1", networks)
    assert not allowed("11.0.0.1", networks)
    assert not allowed("/run/wsdaemon.sock", networks)


def test_figures_that_do_not_render_are_a_500():
    """A snapshot missing its fields (a broken worker's) answers 500, it does not leave the scrape hanging."""
    request = scrape(MetricsResource(lambda: succeed([("1", {"endpoints": {"/echo": {}}})]), LOOPBACK))
    assert request.responseCode == 500 and request.finished == 1
