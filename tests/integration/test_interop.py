"""Interoperability with an independent client (websockets) and plain HTTP.

Each test talks to a real daemon on 127.0.0.1 the way a user's program or
browser would: over a socket, with no knowledge of our internals.
"""

from __future__ import annotations

import base64
import os
import re
import signal
from collections.abc import Iterator
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

MIB = 1024 * 1024
TIMEOUT = 10.0


def ws_connect(url: str, **kwargs: Any) -> ClientConnection:
    """A websockets sync client: no proxy, no keepalive pings, bounded waits.

    The client accepts messages up to 2 MiB so that only the daemon's limit
    is under test.
    """
    options: dict[str, Any] = {
        "proxy": None,
        "open_timeout": TIMEOUT,
        "close_timeout": TIMEOUT,
        "ping_interval": None,
        "max_size": 2 * MIB,
    }
    return connect(url, **(options | kwargs))


@pytest.fixture
def echo(daemon) -> Iterator[ClientConnection]:
    """An open connection to /echo, closed after the test."""
    with ws_connect(daemon.ws_url("/echo")) as connection:
        yield connection


def assert_no_version_banner(server_header: str | None) -> None:
    """A Server header, if any, must not reveal a product version."""
    if server_header is not None:
        assert not re.search(r"\d|twisted", server_header, re.IGNORECASE), server_header


# --- messages -----------------------------------------------------------------


def test_text_message_echoes_unchanged(echo):
    """A text message, non-ASCII included, comes back as the same text."""
    message = "héllo wörld ✓ 🚀"
    echo.send(message)
    assert echo.recv(TIMEOUT) == message


def test_binary_message_echoes_unchanged(echo):
    """A binary message, all 256 byte values, comes back as the same bytes."""
    message = bytes(range(256))
    echo.send(message)
    assert echo.recv(TIMEOUT) == message


@pytest.mark.parametrize("message", ["", b""], ids=["text", "binary"])
def test_empty_message_echoes(echo, message):
    """An empty message comes back empty and of the same type."""
    echo.send(message)
    reply = echo.recv(TIMEOUT)
    assert reply == message and type(reply) is type(message)


@pytest.mark.parametrize("kind", ["text", "binary"])
def test_one_mebibyte_message_echoes(echo, kind):
    """A message of exactly 1 MiB (the default limit) is accepted and echoed whole."""
    raw = os.urandom(MIB)
    message = base64.b64encode(raw)[:MIB].decode() if kind == "text" else raw
    echo.send(message)
    assert echo.recv(TIMEOUT) == message


def test_fragmented_message_echoes_as_one_message(echo):
    """A message sent as several frames comes back as that one message."""
    fragments = ["frag", "ment", "ed ", "✓"]
    echo.send(fragments)
    assert echo.recv(TIMEOUT) == "".join(fragments)


def test_many_messages_echo_in_order(echo):
    """A burst of 200 messages comes back complete and in order."""
    messages = [f"message {i}" for i in range(200)]
    for message in messages:
        echo.send(message)
    assert [echo.recv(TIMEOUT) for _ in messages] == messages


# --- control frames and closing -----------------------------------------------------------


def test_ping_gets_pong(echo):
    """A ping is answered with a pong carrying the same payload."""
    pong = echo.ping(b"are you there")
    assert pong.wait(TIMEOUT), "no pong within 10 s"


def test_normal_close_gets_1000_back(daemon):
    """Closing with 1000 completes the closing handshake with 1000 from the daemon."""
    with ws_connect(daemon.ws_url()) as connection:
        connection.close(1000, "bye")
        assert connection.close_code == 1000


def test_message_over_default_limit_closes_with_1009(echo):
    """A message one byte over the default 1 MiB limit gets close code 1009 (message too big)."""
    with pytest.raises(ConnectionClosed) as closed:
        echo.send(os.urandom(MIB + 1))
        echo.recv(TIMEOUT)
    assert closed.value.rcvd is not None, f"no close frame from the daemon: {closed.value!r}"
    assert closed.value.rcvd.code == 1009


def test_stopping_the_daemon_closes_connections_with_1001(daemon_factory):
    """On SIGTERM the daemon tells each open connection "going away" (1001), then exits."""
    daemon = daemon_factory()
    with ws_connect(daemon.ws_url()) as connection:
        daemon.process.send_signal(signal.SIGTERM)
        with pytest.raises(ConnectionClosed) as closed:
            connection.recv(TIMEOUT)
    daemon.process.wait(TIMEOUT)
    assert closed.value.rcvd is not None, f"no close frame from the daemon: {closed.value!r}"
    assert closed.value.rcvd.code == 1001


# --- the handshake ---------------------------------------------------------------------------


def test_plain_get_on_websocket_endpoint_gets_426(daemon, http_get):
    """A browser that opens /echo as a page is told to upgrade (426 Upgrade Required)."""
    reply = http_get(daemon.port, "/echo")
    assert reply.status == 426
    assert reply.headers.get("Upgrade", "").lower() == "websocket"


def test_wrong_websocket_version_gets_426_naming_version_13(daemon, http_get):
    """A client speaking another WebSocket version gets 426 and Sec-WebSocket-Version: 13."""
    reply = http_get(
        daemon.port,
        "/echo",
        headers={
            "Upgrade": "websocket",
            "Connection": "Upgrade",
            "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode(),
            "Sec-WebSocket-Version": "8",
        },
    )
    assert reply.status == 426
    assert reply.headers.get("Sec-WebSocket-Version") == "13"


def test_cross_origin_browser_is_refused_with_403(daemon):
    """A page from another site cannot open the endpoint (cross-site WebSocket hijacking)."""
    with pytest.raises(InvalidStatus) as refused:
        ws_connect(daemon.ws_url(), origin="http://evil.example")
    assert refused.value.response.status_code == 403


def test_same_origin_browser_is_accepted(daemon):
    """The demo page's own origin may open the endpoint."""
    with ws_connect(daemon.ws_url(), origin=daemon.base_url) as connection:
        connection.send("same origin")
        assert connection.recv(TIMEOUT) == "same origin"


# --- plain HTTP ------------------------------------------------------------------------------


def test_demo_page_is_served_at_root(daemon, http_get):
    """GET / is the demo page (its echo and chat panels), which loads its script from static/demo.js."""
    page = http_get(daemon.port, "/")
    assert page.status == 200
    assert page.headers.get_content_type() == "text/html"
    assert b'id="echo-status"' in page.body and b'id="chat-status"' in page.body
    assert b'src="static/demo.js"' in page.body
    script = http_get(daemon.port, "/static/demo.js")
    assert script.status == 200
    assert "javascript" in script.headers.get_content_type()
    assert b"WebSocket" in script.body


def test_healthz_answers_ok(daemon, http_get):
    """GET /healthz answers 200 "ok" for load balancers and systemd checks."""
    reply = http_get(daemon.port, "/healthz")
    assert reply.status == 200
    assert reply.body.strip() == b"ok"


@pytest.mark.parametrize("path", ["/", "/healthz", "/static/demo.js", "/echo", "/no-such-page"])
def test_http_responses_carry_no_version_banner(daemon, http_get, path):
    """No HTTP response tells a scanner which server version runs here."""
    assert_no_version_banner(http_get(daemon.port, path).headers.get("Server"))


def test_upgrade_response_carries_no_version_banner(daemon):
    """The 101 Switching Protocols response tells no server version either."""
    with ws_connect(daemon.ws_url()) as connection:
        assert connection.response is not None
        assert_no_version_banner(connection.response.headers.get("Server"))


# --- configuration errors --------------------------------------------------------------------

BAD_CONFIGS = {
    "wrong-type": ('[limits]\nmax_message_bytes = "lots"\n', "max_message_bytes"),
    "out-of-range": ("[limits]\nmax_frame_bytes = 0\n", "max_frame_bytes"),
    "unknown-key": ("[limits]\nmax_mesage_bytes = 1024\n", "max_mesage_bytes"),
    "unknown-handler": ('[[endpoints]]\npath = "/echo"\nhandler = "no-such-handler"\n', "handler"),
}


@pytest.mark.parametrize("config_text, key", BAD_CONFIGS.values(), ids=BAD_CONFIGS.keys())
def test_bad_config_exits_with_a_message_naming_file_and_key(run_daemon_expecting_exit, config_text, key):
    """A mistake in the config file stops the daemon with a short message naming the file and the key."""
    exited = run_daemon_expecting_exit(config_text)
    both = exited.stderr + exited.stdout
    assert exited.returncode != 0, both
    assert exited.config_path.name in exited.stderr, both
    assert key in exited.stderr, both
    assert "Traceback" not in both, both
