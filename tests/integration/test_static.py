"""Static file mounts on a real daemon: files served next to WebSocket endpoints, nothing outside served.

Requests go over a raw socket so that paths reach the daemon exactly as
written (no client-side normalisation of ``..`` or percent-escapes).
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

import pytest
from websockets.sync.client import connect

TIMEOUT = 10.0
SECRET = "top-secret-outside-the-mount"


def raw_get(port: int, target: str) -> tuple[int, dict[str, str], bytes]:
    """Send ``GET target`` byte for byte; the status, headers (lower-case names) and body."""
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode("latin-1"))
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {name.strip().lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
    if headers.get("transfer-encoding") == "chunked":
        body = dechunk(body)
    return int(status_line.split()[1]), headers, body


def dechunk(data: bytes) -> bytes:
    body = b""
    while True:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            return body
        body, data = body + data[:size], data[size + 2 :]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A served directory ``www`` (with symlinks in and out) next to secrets that must stay unserved."""
    root = tmp_path_factory.mktemp("static")
    (root / "secret.txt").write_text(SECRET)
    (root / "secret-dir").mkdir()
    (root / "secret-dir" / "inside.txt").write_text(SECRET)
    www = root / "www"
    (www / "sub").mkdir(parents=True)
    (www / "index.html").write_text("<h1>home</h1>")
    (www / "hello.txt").write_text("hello, files")
    (www / "sub" / "deep.txt").write_text("deep file")
    os.symlink(www / "hello.txt", www / "link-in.txt")
    os.symlink(root / "secret.txt", www / "link-out.txt")
    os.symlink(root / "secret-dir", www / "dir-out")
    os.symlink("/etc/passwd", www / "passwd")
    return root


@pytest.fixture
def files_daemon(daemon_factory: Any, site: Path) -> Any:
    """A daemon serving site/www at /files, with the default /echo endpoint on the same port."""
    return daemon_factory(
        f'[[static]]\npath = "/files"\ndirectory = "{site / "www"}"\n\n[[endpoints]]\npath = "/echo"\nhandler = "echo"\n'
    )


def test_files_are_served_next_to_websocket_endpoints(files_daemon):
    """A file under the mount is served with its content type, and /echo on the same port still upgrades."""
    status, headers, body = raw_get(files_daemon.port, "/files/hello.txt")
    assert (status, body) == (200, b"hello, files")
    assert headers["content-type"].startswith("text/plain") and headers.get("x-content-type-options") == "nosniff"
    assert raw_get(files_daemon.port, "/files/sub/deep.txt")[2] == b"deep file"
    with connect(files_daemon.ws_url("/echo"), proxy=None, open_timeout=TIMEOUT) as client:
        client.send("still a websocket")
        assert client.recv(TIMEOUT) == "still a websocket"


def test_directory_serves_its_index_and_is_never_listed(files_daemon):
    """/files/ serves index.html; /files redirects there; a directory without an index is 404, not a listing."""
    assert raw_get(files_daemon.port, "/files/")[0:3:2] == (200, b"<h1>home</h1>")
    status, headers, _ = raw_get(files_daemon.port, "/files")
    assert status in (301, 302) and headers["location"].endswith("/files/")
    status, _, body = raw_get(files_daemon.port, "/files/sub/")
    assert status == 404 and b"deep.txt" not in body


def test_symlink_inside_the_mount_is_served(files_daemon):
    """A symlink whose target lies inside the mounted directory is followed."""
    assert raw_get(files_daemon.port, "/files/link-in.txt")[0:3:2] == (200, b"hello, files")


OUTSIDE_TARGETS = [
    "/files/../secret.txt",
    "/files/%2e%2e/secret.txt",
    "/files/%2E%2E/secret.txt",
    "/files/..%2fsecret.txt",
    "/files/%2e%2e%2fsecret.txt",
    "/files/sub/..%2f..%2fsecret.txt",
    "/files/sub/%2e%2e/%2e%2e/secret.txt",
    "/files/%252e%252e/secret.txt",
    "/files/link-out.txt",
    "/files/dir-out/inside.txt",
    "/files/dir-out/",
    "/files/passwd",
    "/files/%00",
    "/files/hello.txt%00.png",
]


def test_nothing_outside_the_mount_is_ever_served(files_daemon):
    """Dot-dot, encoded dot-dot and encoded slashes, NUL bytes, and symlinks pointing out all get 404, never the secret."""
    served = {}
    for target in OUTSIDE_TARGETS:
        status, _, body = raw_get(files_daemon.port, target)
        if status not in (400, 404) or SECRET.encode() in body or b"root:" in body:
            served[target] = (status, body[:80])
    assert served == {}


def test_mount_at_root_serves_files_around_the_endpoints(daemon_factory, site):
    """With the demo page off, a mount at "/" serves files while /healthz and WebSocket endpoints keep their paths."""
    daemon = daemon_factory(
        f'[http]\ndemo_page = false\n\n[[static]]\npath = "/"\ndirectory = "{site / "www"}"\n\n'
        '[[endpoints]]\npath = "/ws/echo"\nhandler = "echo"\n'
    )
    assert raw_get(daemon.port, "/")[0:3:2] == (200, b"<h1>home</h1>")
    assert raw_get(daemon.port, "/hello.txt")[2] == b"hello, files"
    assert raw_get(daemon.port, "/healthz")[2] == b"ok\n"
    assert raw_get(daemon.port, "/../secret.txt")[0] == 404
    with connect(daemon.ws_url("/ws/echo"), proxy=None, open_timeout=TIMEOUT) as client:
        client.send("hi")
        assert client.recv(TIMEOUT) == "hi"
