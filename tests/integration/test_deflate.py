"""permessage-deflate on real sockets: interop with `websockets` and a decompression bomb."""

from __future__ import annotations

import base64
import os
import re
import socket
import struct
import zlib

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.integration.support import rss_bytes

#: The bomb test's limit: small, so a 1 KiB frame can inflate far past it.
BOMB_CONFIG = """\
[limits]
max_message_bytes = 262144

[[endpoints]]
path = "/echo"
handler = "echo"
"""

#: How much the daemon's resident memory may grow while being bombed (stated in README.md).
BOMB_RSS_BOUND_BYTES = 16 * 1024 * 1024


def summary_line(output: str) -> dict[str, int]:
    """The byte counts of the last per-connection summary line in the daemon's log."""
    lines = [line for line in output.splitlines() if "websocket closed" in line]
    assert lines, output
    return {key: int(value) for key, value in re.findall(r"(bytes_in|bytes_out)=(\d+)", lines[-1])}


def test_websockets_client_negotiates_and_exchanges_compressed_messages(daemon_factory):
    """An independent client (websockets, deflate on by default) round-trips compressible and random data."""
    daemon = daemon_factory()
    compressible = "the same words over and over; " * 2000
    incompressible = os.urandom(50_000)
    with connect(daemon.ws_url("/echo"), max_size=2**21) as ws:
        assert "permessage-deflate" in ws.response.headers["Sec-WebSocket-Extensions"]
        for _ in range(3):
            ws.send(compressible)
            assert ws.recv() == compressible
            ws.send(incompressible)
            assert ws.recv() == incompressible
        ws.send("")
        assert ws.recv() == ""
    daemon.stop()
    counts = summary_line(daemon.output())
    sent = 3 * (len(compressible) + len(incompressible))
    # The text compresses about 100:1, the random bytes not at all: on the wire, both ways,
    # well under what was sent, and at least the random part.
    assert 3 * len(incompressible) < counts["bytes_out"] < sent * 0.5
    assert 3 * len(incompressible) < counts["bytes_in"] < sent * 0.5


def test_client_without_deflate_gets_plain_frames(daemon_factory):
    """A client that offers no compression is served uncompressed."""
    daemon = daemon_factory()
    with connect(daemon.ws_url("/echo"), compression=None) as ws:
        assert "Sec-WebSocket-Extensions" not in ws.response.headers
        ws.send("plain")
        assert ws.recv() == "plain"


def test_endpoint_with_deflate_disabled_declines_the_offer(daemon_factory):
    """[endpoints.deflate] enabled = false answers without Sec-WebSocket-Extensions."""
    daemon = daemon_factory('[[endpoints]]\npath = "/echo"\nhandler = "echo"\n[endpoints.deflate]\nenabled = false\n')
    with connect(daemon.ws_url("/echo")) as ws:
        assert "Sec-WebSocket-Extensions" not in ws.response.headers
        ws.send("still works")
        assert ws.recv() == "still works"


def bomb_frame() -> bytes:
    """A masked client frame of about 1 KiB whose payload inflates to 1 MiB of zeros."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    payload = compressor.compress(b"\x00" * (1 << 20)) + compressor.flush(zlib.Z_SYNC_FLUSH)
    payload = payload[:-4]
    assert len(payload) <= 1100
    mask = os.urandom(4)
    masked = bytes(byte ^ mask[i % 4] for i, byte in enumerate(payload))
    return struct.pack("!BBH", 0xC2, 0x80 | 126, len(payload)) + mask + masked


def open_deflate_socket(port: int) -> socket.socket:
    """A raw client that completes a handshake offering permessage-deflate."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET /echo HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            "Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n"
        ).encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(4096)
    assert head.startswith(b"HTTP/1.1 101") and b"permessage-deflate" in head, head
    return sock


def read_close_code(sock: socket.socket) -> int:
    """Read frames until the server's Close; return its code."""
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError(f"connection closed without a close frame after {data!r}")
        data += chunk
        while len(data) >= 2:
            opcode, length = data[0] & 0x0F, data[1] & 0x7F
            if len(data) < 2 + length:
                break
            if opcode == 0x8:
                return struct.unpack("!H", data[2:4])[0]
            data = data[2 + length :]


def test_decompression_bomb_is_closed_with_1009_and_memory_stays_bounded(daemon_factory):
    """A ~1 KiB frame inflating past max_message_bytes gets 1009; 20 at once barely move the RSS."""
    daemon = daemon_factory(BOMB_CONFIG)
    before = rss_bytes(daemon.process.pid)
    sockets = [open_deflate_socket(daemon.port) for _ in range(20)]
    frame = bomb_frame()
    for sock in sockets:
        sock.sendall(frame)
    codes = [read_close_code(sock) for sock in sockets]
    after = rss_bytes(daemon.process.pid)
    for sock in sockets:
        sock.close()
    assert codes == [1009] * 20
    assert after - before < BOMB_RSS_BOUND_BYTES, f"RSS grew by {(after - before) / 2**20:.1f} MiB"
    with connect(daemon.ws_url("/echo")) as ws:  # and the daemon still serves others
        ws.send("alive")
        assert ws.recv() == "alive"


def test_closed_bomb_does_not_stop_the_next_message(daemon_factory):
    """After a bomb, a compressed message under the limit on another connection still round-trips."""
    daemon = daemon_factory(BOMB_CONFIG)
    sock = open_deflate_socket(daemon.port)
    sock.sendall(bomb_frame())
    assert read_close_code(sock) == 1009
    sock.close()
    with connect(daemon.ws_url("/echo"), max_size=2**20) as ws:
        ws.send(b"\x00" * 200_000)
        assert ws.recv() == b"\x00" * 200_000
        with pytest.raises(ConnectionClosed) as closed:
            ws.send(b"\x00" * 300_000)
            ws.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
