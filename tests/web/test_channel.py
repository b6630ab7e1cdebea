"""The HTTP channel's own answers (wsdaemon.web.channel): 414/431 for oversized heads, 413 for bodies.

Driven through the whole listener stack on a ``StringTransport`` and a memory
clock (tests/web/stack.py): raw bytes in, the daemon's answer out.
"""

from __future__ import annotations

import pytest

from tests.web.stack import HOST, Peer, Stack, http_request, parse_response

SMALL_HEAD = "[limits]\nhttp_max_header_bytes = 1024\n"
SMALL_BODY = "[limits]\nhttp_max_body_bytes = 100\n"


def post_head(path: str = "/echo", **headers: str) -> bytes:
    """A POST request head with the given headers (underscores in names become dashes)."""
    lines = [f"POST {path} HTTP/1.1", f"Host: {HOST}"]
    lines += [f"{name.replace('_', '-')}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def chunk(data: bytes) -> bytes:
    """One chunk of a chunked body (RFC 9112 §7.1)."""
    return b"%x\r\n%s\r\n" % (len(data), data)


def assert_refused_and_closing(stack: Stack, peer: Peer, status: int) -> None:
    """The answer is ``status`` with Connection: close; nothing more is read; the connection ends later."""
    response = parse_response(peer.take())
    assert response.status == status
    assert response.header("connection") == "close"
    assert response.body.endswith(b"\n") and response.rest == b""
    assert peer.transport.producerState == "paused"  # no more reading from the client
    assert not peer.transport.disconnecting  # not yet: a reset now could destroy the answer
    stack.clock.advance(stack.config.limits.close_timeout_seconds)
    assert peer.transport.disconnecting


# --- the request head ---------------------------------------------------------------------------


def test_a_header_line_over_the_limit_gets_431_instead_of_a_silent_hang_up():
    """One header line longer than http_max_header_bytes (default 16 KiB) is answered 431, not just dropped."""
    stack = Stack()
    peer = stack.connect()
    peer.send(http_request("/healthz", headers=[("X-Big", "x" * 20_000)]))
    assert_refused_and_closing(stack, peer, 431)


def test_a_header_line_under_a_raised_limit_is_served():
    """With http_max_header_bytes = 64 KiB, a 20 KB header line (over Twisted's own 16 KiB line limit) is fine."""
    stack = Stack("[limits]\nhttp_max_header_bytes = 65536\n")
    response = stack.connect().request(http_request("/healthz", headers=[("X-Big", "x" * 20_000)]))
    assert response.status == 200


def test_a_line_over_the_limit_is_answered_before_its_end_arrives():
    """A header line still growing past the limit (no CRLF yet) is refused at once: no need to wait for the rest."""
    stack = Stack(SMALL_HEAD)
    peer = stack.connect()
    peer.send(f"GET /healthz HTTP/1.1\r\nHost: {HOST}\r\nX-Big: ".encode() + b"x" * 1100)
    assert_refused_and_closing(stack, peer, 431)


def test_many_short_lines_over_the_limit_together_get_431():
    """Header lines each under the limit but together over http_max_header_bytes are refused with 431."""
    stack = Stack(SMALL_HEAD)
    peer = stack.connect()
    peer.send(http_request("/healthz", headers=[(f"X-{i}", "y" * 100) for i in range(12)]))
    assert_refused_and_closing(stack, peer, 431)


def test_a_request_line_over_the_limit_gets_414():
    """A request line (the URL) longer than http_max_header_bytes is refused with 414 URI Too Long."""
    stack = Stack(SMALL_HEAD)
    peer = stack.connect()
    peer.send(f"GET /healthz?{'q' * 2000} HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
    assert_refused_and_closing(stack, peer, 414)


def test_the_head_count_starts_again_for_each_request():
    """Two keep-alive requests whose heads together pass the limit are both served (the count is per request)."""
    stack = Stack(SMALL_HEAD)
    peer = stack.connect()
    request = http_request("/healthz", headers=[("X-Pad", "p" * 600)])
    assert peer.request(request).status == 200
    assert peer.request(request).status == 200


def test_a_refused_head_reaches_no_handler():
    """An upgrade request with an oversized header gets 431 and no handler is built for it."""
    stack = Stack(SMALL_HEAD)
    peer = stack.connect()
    peer.send(http_request("/echo", headers=[("Upgrade", "websocket"), ("X-Big", "x" * 2000)]))
    assert parse_response(peer.take()).status == 431
    assert stack.factories["/echo"].handlers == []


# --- the request body ---------------------------------------------------------------------------


def test_a_declared_body_over_the_limit_gets_413_before_any_of_it_arrives():
    """POST with Content-Length over http_max_body_bytes (default 64 KiB) is answered 413 on the head alone."""
    stack = Stack()
    peer = stack.connect()
    peer.send(post_head(Content_Length=str(5 * 1024 * 1024)))
    assert_refused_and_closing(stack, peer, 413)


def test_body_bytes_after_a_413_are_not_read():
    """What the client goes on sending after the 413 is dropped, not buffered, and gets no second answer."""
    stack = Stack(SMALL_BODY)
    peer = stack.connect()
    peer.send(post_head("/healthz", Content_Length="5000") + b"x" * 1000)
    assert parse_response(peer.take()).status == 413
    peer.send(b"x" * 4000 + http_request("/healthz"))
    assert peer.take() == b""
    (request,) = peer.protocol.wrappedProtocol.requests
    assert request.body_bytes == 0 and request.content is None


def test_no_100_continue_for_a_body_that_is_too_large():
    """A client asking "Expect: 100-continue" for an oversized body gets the 413 and never a 100."""
    stack = Stack(SMALL_BODY)
    peer = stack.connect()
    peer.send(post_head(Content_Length="101", Expect="100-continue"))
    written = peer.take()
    assert written.startswith(b"HTTP/1.1 413 ") and b"100 Continue" not in written


def test_a_body_at_the_limit_is_read_and_the_request_served():
    """A body of exactly http_max_body_bytes reaches the resource (a POST to an endpoint: 405)."""
    stack = Stack(SMALL_BODY)
    response = stack.connect().request(http_request("/echo", method="POST", body=b"x" * 100))
    assert response.status == 405


def test_a_chunked_body_is_counted_and_refused_once_over_the_limit():
    """A chunked body has no declared length: it gets 413 when its running count passes the limit."""
    stack = Stack(SMALL_BODY)
    peer = stack.connect()
    peer.send(post_head(Transfer_Encoding="chunked") + chunk(b"a" * 60))
    assert peer.take() == b""
    peer.send(chunk(b"b" * 60))
    assert_refused_and_closing(stack, peer, 413)


def test_a_chunked_body_over_the_limit_is_refused_even_when_it_ends_in_the_same_read():
    """An oversized chunked body that arrives whole in one read still gets 413, never reaches the resource."""
    stack = Stack(SMALL_BODY)
    peer = stack.connect()
    peer.send(post_head(Transfer_Encoding="chunked") + chunk(b"a" * 101) + b"0\r\n\r\n")
    written = peer.take()
    assert parse_response(written).status == 413
    assert written.count(b"HTTP/1.1 ") == 1


def test_a_chunked_body_within_the_limit_is_served():
    """A chunked body under the limit is read in full and the request answered normally."""
    stack = Stack(SMALL_BODY)
    peer = stack.connect()
    peer.send(post_head(Transfer_Encoding="chunked") + chunk(b"a" * 50) + chunk(b"b" * 50) + b"0\r\n\r\n")
    assert parse_response(peer.take()).status == 405


@pytest.mark.parametrize("value", [0, 2**30 + 1, "big"])
def test_the_body_limit_is_range_checked(value):
    """http_max_body_bytes takes an integer from 1 to 1 GiB, like every other limit."""
    from wsdaemon.config import ConfigError, parse_config

    with pytest.raises(ConfigError) as raised:
        parse_config(f"[limits]\nhttp_max_body_bytes = {value!r}\n".replace("'", '"'), "test.toml")
    assert raised.value.problems[0].key == "limits.http_max_body_bytes"


def test_the_body_limit_is_listener_wide():
    """http_max_body_bytes bounds the HTTP side of a listener, so an endpoint's limits table may not set it."""
    from wsdaemon.config import ConfigError, parse_config

    text = '[[endpoints]]\npath = "/x"\nhandler = "echo"\n[endpoints.limits]\nhttp_max_body_bytes = 10\n'
    with pytest.raises(ConfigError) as raised:
        parse_config(text, "test.toml")
    assert "listener-wide" in raised.value.problems[0].expected
