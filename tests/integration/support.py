"""Helpers shared by the integration tests: ports, the daemon's log, /proc readings, hand-made frames, a cuttable relay."""

from __future__ import annotations

import contextlib
import os
import socket
import struct
import threading
import time
from typing import Any

import pytest

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def wait_for_output(daemon: Any, text: str, count: int = 1, timeout: float = 15.0) -> None:
    """Wait until ``text`` appeared ``count`` times in the daemon's output."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if daemon.output().count(text) >= count:
            return
        time.sleep(0.05)
    pytest.fail(f"{text!r} not logged {count} times\n{daemon.output()}", pytrace=False)


def rss_bytes(pid: int) -> int:
    """Resident memory of a process, from /proc."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def masked_binary_frame(payload: bytes) -> bytes:
    """One client binary frame, masked with the all-zero key (valid, and the payload stays as it is)."""
    if len(payload) > 65535:
        header = struct.pack("!BBQ", 0x82, 0x80 | 127, len(payload))
    else:
        header = struct.pack("!BBH", 0x82, 0x80 | 126, len(payload))
    return header + b"\x00\x00\x00\x00" + payload


def child_pids(pid: int) -> list[int]:
    """The direct children of a process, from /proc (a main process's workers)."""
    with open(f"/proc/{pid}/task/{pid}/children") as children:
        return [int(child) for child in children.read().split()]


def socket_inodes(pid: int) -> set[str]:
    """The inodes of the sockets a process holds open, from its /proc/PID/fd links."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:  # closed meanwhile
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    return inodes


def established_connections(port: int) -> set[str]:
    """Inodes of the ESTABLISHED TCP sockets whose local port is ``port`` (the server's ends), from /proc/net/tcp."""
    inodes = set()
    with open("/proc/net/tcp") as table:
        for line in table.read().splitlines()[1:]:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "01":
                inodes.add(fields[9])
    return inodes


def connections_by_process(port: int, pids: list[int]) -> dict[int, int]:
    """How many of the server's established connections on ``port`` each process holds (seen from outside)."""
    established = established_connections(port)
    return {pid: len(socket_inodes(pid) & established) for pid in pids}


UPGRADE_KEY = "dGhlIHNhbXBsZSBub25jZQ=="  # RFC 6455 §1.3's sample key
SOCKET_TIMEOUT = 10.0


def upgrade_head(path: str = "/echo", headers: tuple[tuple[str, str], ...] = ()) -> bytes:
    """A WebSocket upgrade request (RFC 6455 §4.1) for ``path`` on 127.0.0.1, with extra ``headers``."""
    lines = [
        f"GET {path} HTTP/1.1",
        "Host: 127.0.0.1",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {UPGRADE_KEY}",
        "Sec-WebSocket-Version: 13",
        *(f"{name}: {value}" for name, value in headers),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def response_head(sock: socket.socket) -> tuple[int, dict[str, str]]:
    """The status and headers (lower-case names) of the response head the daemon sends on ``sock``."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        assert chunk, f"closed before a response head: {data!r}"
        data += chunk
    status_line, *lines = data.partition(b"\r\n\r\n")[0].decode("latin-1").split("\r\n")
    headers = {name.strip().lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
    return int(status_line.split()[1]), headers


def status_of(sock: socket.socket) -> int:
    """The status of the response head the daemon sends on ``sock``."""
    return response_head(sock)[0]


def upgrade(
    port: int,
    prefix: bytes = b"",
    headers: tuple[tuple[str, str], ...] = (),
    source: str = LOOPBACK,
    path: str = "/echo",
) -> socket.socket:
    """A connection (from ``source``) that sent ``prefix`` and an upgrade request; its response is not read yet."""
    sock = socket.create_connection((LOOPBACK, port), timeout=SOCKET_TIMEOUT, source_address=(source, 0))
    sock.sendall(prefix + upgrade_head(path, headers))
    return sock


def close_handshake(sock: socket.socket) -> None:
    """Send a masked 1000 close and read until the daemon closes TCP (so it has forgotten the connection)."""
    sock.sendall(b"\x88\x82\x00\x00\x00\x00\x03\xe8")
    while sock.recv(4096):
        pass
    sock.close()


class CuttableProxy:
    """A TCP relay on 127.0.0.1 that a test can cut: a network outage without restarting the daemon.

    :meth:`cut` drops every relayed connection without a close frame (as a
    lost link does) and stops listening, so reconnects are refused;
    :meth:`restore` listens again on the same port. One thread accepts and
    two threads pump each connection; :meth:`close` ends them all.
    """

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._server: socket.socket | None = None
        self.restore()

    def restore(self) -> None:
        """Listen (again) on :attr:`port` and relay each new connection to the target."""
        server = socket.create_server((LOOPBACK, self.port))
        self._server = server
        threading.Thread(target=self._accept, args=(server,), daemon=True).start()

    def cut(self) -> None:
        """Drop every relayed connection at once and refuse new ones until :meth:`restore`."""
        server, self._server = self._server, None
        if server is not None:
            with contextlib.suppress(OSError):
                server.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread (Linux) so the port is free
            server.close()
        with self._lock:
            dropped, self._sockets = self._sockets, []
        for sock in dropped:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    close = cut

    def _accept(self, server: socket.socket) -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:  # closed by cut()
                return
            try:
                upstream = socket.create_connection((LOOPBACK, self.target_port))
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)
