"""Backpressure on real sockets: a peer that never reads cannot make the daemon grow."""

from __future__ import annotations

import socket
import time

from tests.integration.support import masked_binary_frame, rss_bytes

#: Per the README: at most write_buffer_high_bytes plus write_buffer_max_bytes queued per peer,
#: and reading from the peer pauses meanwhile; allow the interpreter some slack on top.
RSS_BOUND_BYTES = 24 * 1024 * 1024


def upgraded_socket(port: int) -> socket.socket:
    """A raw client socket after a plain (uncompressed) upgrade to /echo, with small buffers."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.sendall(
        b"GET /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


def test_client_that_never_reads_keeps_the_daemon_bounded(daemon_factory):
    """Echo to a client that sends but never reads: sending blocks, the daemon's RSS stays bounded."""
    daemon = daemon_factory()
    before = rss_bytes(daemon.process.pid)
    sock = upgraded_socket(daemon.port)
    sock.settimeout(0.5)
    frame = masked_binary_frame(b"x" * 512 * 1024)
    sent = 0
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            sock.sendall(frame)
            sent += len(frame)
        except TimeoutError:
            break  # the daemon stopped reading from us: backpressure reached the sender
    after = rss_bytes(daemon.process.pid)
    sock.close()
    assert sent < 64 * 1024 * 1024, "the daemon kept reading from a peer that never reads its answers"
    assert after - before < RSS_BOUND_BYTES, f"RSS grew by {(after - before) / 2**20:.1f} MiB"
    with socket.create_connection(("127.0.0.1", daemon.port)) as other:  # and it still serves others
        other.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert other.recv(100).startswith(b"HTTP/1.1 200")
