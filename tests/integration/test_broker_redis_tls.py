"""The Redis broker over TLS (rediss://, a CA file) with a password from password_file, and over a unix socket."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from tests.certs import ThrowawayCA
from tests.integration.support import free_port
from tests.integration.test_broker_redis import CHANNEL, TOKEN, api, receive
from tests.integration.test_handlers import eventually, ws

ENDPOINTS = """
[api]
token_file = "{token}"
[[endpoints]]
path = "/chat"
handler = "broadcast"
[endpoints.options]
channel_from_path = true
"""


def start_redis(tmp_path: Path, *args: str) -> subprocess.Popen[bytes]:
    """A redis-server with these options (no persistence), once it logged that it accepts connections."""
    log = tmp_path / "redis.log"
    process = subprocess.Popen(
        ["redis-server", "--save", "", "--appendonly", "no", "--bind", "127.0.0.1", "--logfile", str(log), *args],
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if log.exists() and "ready to accept connections" in log.read_text().lower():
            return process
        if process.poll() is not None:
            break
        time.sleep(0.05)
    process.kill()
    pytest.fail(f"redis-server did not start: {log.read_text() if log.exists() else 'no log'}", pytrace=False)


def round_trip(daemon) -> None:
    """A message published through the API reaches a member by way of Redis (route "broker")."""
    with ws(daemon.ws_url(CHANNEL)) as member:
        eventually(lambda: "connected; " in daemon.output(), "the broker connected")
        status, answer = api(daemon, "POST", "/api/publish", {"channel": CHANNEL, "data": "over the broker"})
        assert (status, answer["route"]) == (200, "broker"), daemon.output()
        assert receive(member, 1) == ["over the broker"]


def test_rediss_with_a_ca_file_and_a_password(daemon_factory, tmp_path):
    """rediss://localhost with tls_ca_file and password_file: the daemon authenticates over TLS and delivers."""
    ca = ThrowawayCA(tmp_path / "pki")
    server = ca.issue("localhost", ("localhost",), ip_addresses=("127.0.0.1",))
    port = free_port()
    redis = start_redis(
        tmp_path, "--port", "0", "--tls-port", str(port), "--tls-cert-file", str(server.cert_path),
        "--tls-key-file", str(server.key_path), "--tls-auth-clients", "no", "--requirepass", "s3cret-pass",
    )  # fmt: skip
    try:
        (tmp_path / "token").write_text(TOKEN)
        (tmp_path / "redis-password").write_text("s3cret-pass\n")
        config = (
            f'[broker]\nurl = "rediss://localhost:{port}/0"\ntls_ca_file = "{ca.path}"\n'
            f'password_file = "{tmp_path / "redis-password"}"\n' + ENDPOINTS.format(token=tmp_path / "token")
        )
        daemon = daemon_factory(config)
        round_trip(daemon)
        assert "s3cret-pass" not in daemon.output()
    finally:
        redis.kill()
        redis.wait()


def test_a_unix_socket_url(daemon_factory, tmp_path):
    """unix:/path/redis.sock?db=1 reaches Redis over its unix socket."""
    socket_path = tmp_path / "redis.sock"
    redis = start_redis(tmp_path, "--port", "0", "--unixsocket", str(socket_path))
    try:
        (tmp_path / "token").write_text(TOKEN)
        config = f'[broker]\nurl = "unix:{socket_path}?db=1"\n' + ENDPOINTS.format(token=tmp_path / "token")
        round_trip(daemon_factory(config))
    finally:
        redis.kill()
        redis.wait()


def test_a_wrong_password_is_logged_once_and_the_daemon_serves_locally(daemon_factory, tmp_path):
    """AUTH refused: one warning naming the reason, no crash, members of the process still get messages."""
    port = free_port()
    redis = start_redis(tmp_path, "--port", str(port), "--requirepass", "right-one")
    try:
        (tmp_path / "token").write_text(TOKEN)
        (tmp_path / "pw").write_text("wrong-one\n")
        config = (
            f'[broker]\nurl = "redis://127.0.0.1:{port}/0"\npassword_file = "{tmp_path / "pw"}"\n'
            "reconnect_initial_seconds = 0.05\nreconnect_max_seconds = 0.1\n"
            + ENDPOINTS.format(token=tmp_path / "token")
        )
        daemon = daemon_factory(config)
        with ws(daemon.ws_url(CHANNEL)) as member:
            time.sleep(1.0)  # many attempts at 0.1 s
            status, answer = api(daemon, "POST", "/api/publish", {"channel": CHANNEL, "data": "local"})
            assert (status, answer["route"]) == (200, "queued")
            assert receive(member, 1) == ["local"]
        assert daemon.output().count("cannot connect") == 1 and "could not auth" in daemon.output()
    finally:
        redis.kill()
        redis.wait()
