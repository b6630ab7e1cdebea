"""HTTP limits and HEAD on a real daemon, over raw sockets: what a client sees on the wire.

Each request is written byte for byte so that what reaches the daemon is exactly
what is tested: an oversized header line, a 5 MB upload it must not read, HEAD.
"""

from __future__ import annotations

import socket
from typing import Any

import pytest

TIMEOUT = 10.0
LIMITS = "[limits]\nclose_timeout_seconds = 1.0\n"
FIVE_MB = 5 * 1024 * 1024


def read_head(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """Read until the end of one response head: the status, headers (lower-case names) and what followed."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed before a response head: {data!r}"
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {name.strip().lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
    return int(status_line.split()[1]), headers, rest


def read_to_end(sock: socket.socket) -> bytes:
    """Everything until the daemon closes the connection (a reset counts as the end)."""
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    return data


@pytest.fixture
def limited(daemon_factory: Any) -> Any:
    """A daemon on the defaults, except a 1 s close timeout so refused connections end quickly."""
    return daemon_factory(LIMITS)


def test_a_header_line_over_the_limit_is_answered_431(limited):
    """A 20 KB header line (over the default 16 KiB http_max_header_bytes) gets 431, then the connection closes."""
    with socket.create_connection(("127.0.0.1", limited.port), timeout=TIMEOUT) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"x" * 20_000 + b"\r\n\r\n")
        status, headers, rest = read_head(sock)
        assert (status, headers["connection"]) == (431, "close")
        body = rest + read_to_end(sock)
        assert body.startswith(b"header line over http_max_header_bytes")


def test_a_5_mb_post_gets_413_before_its_body_is_sent(limited):
    """A 5 MB POST to /echo is refused with 413 on its head: the client sees it after sending only 64 KiB."""
    with socket.create_connection(("127.0.0.1", limited.port), timeout=TIMEOUT) as sock:
        head = f"POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {FIVE_MB}\r\n\r\n".encode()
        sock.sendall(head + b"x" * 65536)
        status, headers, _ = read_head(sock)
        assert (status, headers["connection"]) == (413, "close")
        try:
            sock.sendall(b"x" * (FIVE_MB - 65536))
        except (BrokenPipeError, ConnectionResetError):
            pass  # the daemon dropped the connection while we were still sending: as it should
        assert b"HTTP/1.1" not in read_to_end(sock)  # no second answer (today's code read it all, then sent 405)


def test_a_chunked_upload_over_the_limit_gets_413(limited):
    """A chunked POST gets 413 once the chunks add up to more than http_max_body_bytes (64 KiB)."""
    with socket.create_connection(("127.0.0.1", limited.port), timeout=TIMEOUT) as sock:
        sock.sendall(b"POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n")
        sock.sendall(b"%x\r\n%s\r\n" % (40_000, b"y" * 40_000) * 2)
        status, _, _ = read_head(sock)
        assert status == 413


@pytest.mark.parametrize("path", ["/", "/healthz", "/static/demo.js", "/echo", "/nope"])
def test_head_answers_headers_only_and_logs_nothing(limited, path):
    """HEAD gets the GET answer's status and Content-Length, no body, and no "I think I'll eat it" log line."""
    with socket.create_connection(("127.0.0.1", limited.port), timeout=TIMEOUT) as sock:
        sock.sendall(f"HEAD {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
        status, headers, rest = read_head(sock)
        assert rest + read_to_end(sock) == b""
    assert status == {"/": 200, "/healthz": 200, "/static/demo.js": 200, "/echo": 426, "/nope": 404}[path]
    if path != "/nope":  # twisted.web's error pages are streamed (chunked for GET), so they have no length
        assert int(headers["content-length"]) > 0
    assert "returning a message body" not in limited.output()
