"""A client that sends frames before it has read the 101 (the edge DESIGN §2.2 accepts).

Bytes that arrive in the same read as the upgrade request are still in
twisted.web's private request buffer when the connection switches to WebSocket,
and the design does not reach into it. So such early frames are lost; this test
pins that down and checks that the connection itself stays sound: everything
sent after the 101 is answered. Browsers and the usual clients wait for the 101.
"""

from __future__ import annotations

import socket

from tests.integration.support import masked_binary_frame

UPGRADE = (
    b"GET /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


def read_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        assert chunk, f"connection closed after {data!r}"
        data += chunk
    return data


def test_frame_sent_with_the_upgrade_is_dropped_but_the_connection_works(daemon_factory):
    """A frame glued to the request is not echoed; frames after the 101 are, in order."""
    daemon = daemon_factory()
    with socket.create_connection(("127.0.0.1", daemon.port), timeout=5) as sock:
        sock.sendall(UPGRADE + masked_binary_frame(b"early" * 30))
        head = b""
        while b"\r\n\r\n" not in head:
            head += sock.recv(1)
        assert head.startswith(b"HTTP/1.1 101")
        for payload in (b"first" * 30, b"second" * 30):
            sock.sendall(masked_binary_frame(payload))
            header = read_exactly(sock, 4)
            assert header[0] == 0x82 and header[1] == 126, header
            assert read_exactly(sock, int.from_bytes(header[2:4], "big")) == payload
