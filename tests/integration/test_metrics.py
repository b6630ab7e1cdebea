"""``/metrics`` for real: a daemon on 127.0.0.1, real WebSocket traffic, a scrape parsed with prometheus_client."""

from __future__ import annotations

import http.client
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from tests.integration.support import free_port

METRICS = """
[metrics]
enabled = true

[[endpoints]]
path = "/echo"
handler = "echo"

[[endpoints]]
path = "/guarded"
handler = "echo"
allowed_origins = ["https://good.example"]
"""


def scrape(port: int, source: str = "127.0.0.1", path: str = "/metrics") -> tuple[int, str]:
    """One GET of ``path`` from the local address ``source``: (status, body)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10, source_address=(source, 0))
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read().decode("utf-8")
    finally:
        connection.close()


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a scrape, by (name, sorted labels), as prometheus_client's parser reads it."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(found: dict, name: str, **labels: str) -> float:
    """One sample's value; 0 when the scrape has no such series."""
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


def echo_messages(url: str, messages: list[str], code: int = 1000) -> None:
    """Echo each message once, then close with ``code`` (no compression, no client pings)."""
    with connect(url, compression=None, ping_interval=None, open_timeout=10) as ws:
        for message in messages:
            ws.send(message)
            assert ws.recv(timeout=10) == message
        ws.close(code)


def wait_for(port: int, check) -> dict:
    """Scrape until ``check(samples)`` holds (a closed connection is folded in once the server saw the close)."""
    deadline = time.monotonic() + 10
    while True:
        try:
            status, body = scrape(port)
        except ConnectionRefusedError:  # a separate metrics listener starts just after the main one
            status, body = 0, ""
        if status == 200 and check(found := samples(body)):
            return found
        assert time.monotonic() < deadline, f"scrape never matched: {status} {body}"
        time.sleep(0.05)


def test_scrape_counts_what_the_clients_sent_and_received(daemon_factory):
    """After real traffic, the counters equal the messages and bytes sent, the handshakes and the close codes."""
    daemon = daemon_factory(METRICS)
    messages = ["hello", "x" * 100, "world"]
    echo_messages(daemon.ws_url("/echo"), messages)
    echo_messages(daemon.ws_url("/echo"), ["again"], code=4001)
    with pytest.raises(InvalidStatus):
        connect(daemon.ws_url("/guarded"), origin="https://evil.example", open_timeout=10)
    found = wait_for(daemon.port, lambda s: value(s, "wsdaemon_close_codes_total", endpoint="/echo", code="4001") == 1)
    sent = [*messages, "again"]
    # RFC 6455 §5.2: a client frame under 126 bytes is 2 head bytes, a 4-byte mask, the payload;
    # a close frame carries the 2-byte code. The server's frames have no mask.
    assert value(found, "wsdaemon_messages_received_total", endpoint="/echo") == len(sent)
    assert value(found, "wsdaemon_messages_sent_total", endpoint="/echo") == len(sent)
    assert value(found, "wsdaemon_bytes_received_total", endpoint="/echo") == sum(6 + len(m) for m in sent) + 2 * 8
    assert value(found, "wsdaemon_bytes_sent_total", endpoint="/echo") == sum(2 + len(m) for m in sent) + 2 * 4
    assert value(found, "wsdaemon_handshakes_total", endpoint="/echo", result="accepted") == 2
    assert value(found, "wsdaemon_handshakes_total", endpoint="/guarded", result="403") == 1
    assert value(found, "wsdaemon_close_codes_total", endpoint="/echo", code="1000") == 1
    assert value(found, "wsdaemon_connections_open", endpoint="/echo") == 0
    assert value(found, "wsdaemon_broker_link_up", state="local") == 1


def test_open_connections_are_counted_while_open(daemon_factory):
    """A connection still open shows in connections_open and its messages are counted already."""
    daemon = daemon_factory(METRICS)
    with connect(daemon.ws_url("/echo"), compression=None, ping_interval=None, open_timeout=10) as ws:
        ws.send("still here")
        assert ws.recv(timeout=10) == "still here"
        found = samples(scrape(daemon.port)[1])
        assert value(found, "wsdaemon_connections_open", endpoint="/echo") == 1
        assert value(found, "wsdaemon_messages_received_total", endpoint="/echo") == 1


def test_a_client_outside_allowed_networks_gets_403(daemon_factory):
    """With allowed_networks = ["127.0.0.1/32"], a scrape from 127.0.0.2 is refused, one from 127.0.0.1 served."""
    daemon = daemon_factory(METRICS.replace("enabled = true", 'enabled = true\nallowed_networks = ["127.0.0.1/32"]'))
    status, body = scrape(daemon.port, source="127.0.0.2")
    assert status == 403
    assert "wsdaemon_" not in body
    assert scrape(daemon.port)[0] == 200


def test_metrics_are_off_unless_enabled(daemon_factory):
    """Without [metrics] enabled = true there is no /metrics (404), and /healthz still answers."""
    daemon = daemon_factory(None)
    assert scrape(daemon.port)[0] == 404
    assert scrape(daemon.port, path="/healthz")[0] == 200


def test_a_separate_listener_serves_metrics_alone(daemon_factory):
    """With [metrics] listen, /metrics is on that port and not on the main listener."""
    port = free_port()
    daemon = daemon_factory(
        METRICS.replace("enabled = true", f'enabled = true\nlisten = "tcp:{port}:interface=127.0.0.1"')
    )
    echo_messages(daemon.ws_url("/echo"), ["one"])
    assert scrape(daemon.port)[0] == 404
    found = wait_for(port, lambda s: value(s, "wsdaemon_close_codes_total", endpoint="/echo", code="1000") == 1)
    assert value(found, "wsdaemon_messages_received_total", endpoint="/echo") == 1


def test_keepalive_round_trips_fill_the_histogram(daemon_factory):
    """With a 1 s ping interval, a client that stays connected answers pings and wsdaemon_ping_rtt_seconds counts them."""
    daemon = daemon_factory(METRICS.replace("[metrics]", "[limits]\nping_interval_seconds = 1.0\n\n[metrics]"))
    with connect(daemon.ws_url("/echo"), compression=None, ping_interval=None, open_timeout=10):
        found = wait_for(daemon.port, lambda s: value(s, "wsdaemon_ping_rtt_seconds_count", endpoint="/echo") >= 1)
    assert value(found, "wsdaemon_ping_rtt_seconds_bucket", endpoint="/echo", le="+Inf") >= 1
    assert value(found, "wsdaemon_ping_rtt_seconds_sum", endpoint="/echo") > 0
