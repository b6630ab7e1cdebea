"""The daemon's lifecycle for real: graceful SIGTERM, keepalive, SIGHUP reload, log formats, --check-config.

The daemon is a subprocess on 127.0.0.1; clients are ``websockets`` or raw sockets.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.certs import ThrowawayCA
from tests.integration.support import wait_for_output

LOOPBACK = "127.0.0.1"
REPO_ROOT = Path(__file__).resolve().parents[2]


class RawClient:
    """A WebSocket client on a bare socket that answers nothing (a peer gone silent behind a NAT)."""

    def __init__(self, port: int, path: str = "/echo") -> None:
        self.sock = socket.create_connection((LOOPBACK, port), timeout=10)
        key = base64.b64encode(os.urandom(16)).decode()
        request = f"GET {path} HTTP/1.1\r\nHost: {LOOPBACK}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        self.sock.sendall(request.encode())
        self.buffer = b""
        while b"\r\n\r\n" not in self.buffer:
            self.buffer += self._recv()
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101 "), head

    def _recv(self) -> bytes:
        data = self.sock.recv(65536)
        if not data:
            raise EOFError
        return data

    def _need(self, size: int) -> bytes:
        while len(self.buffer) < size:
            self.buffer += self._recv()
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data

    def read_frame(self) -> tuple[int, bytes]:
        """The next (unmasked, server) frame as (opcode, payload)."""
        first, second = self._need(2)
        length = second & 0x7F
        if length == 126:
            (length,) = struct.unpack("!H", self._need(2))
        elif length == 127:
            (length,) = struct.unpack("!Q", self._need(8))
        return first & 0x0F, self._need(length)

    def closed_by_server(self, timeout: float) -> bool:
        """Whether the server closes TCP within ``timeout`` seconds (reading whatever comes first)."""
        self.sock.settimeout(timeout)
        try:
            while self.sock.recv(65536):
                pass
        except TimeoutError:
            return False
        except ConnectionError:
            return True
        return True


# --- graceful shutdown ---------------------------------------------------------------------------


def test_sigterm_sends_1001_to_every_websocket_and_exits_0(daemon_factory):
    """On SIGTERM connected clients receive close 1001 and the process exits 0 within the drain timeout."""
    daemon = daemon_factory("[limits]\ndrain_timeout_seconds = 5.0\n")
    with contextlib.ExitStack() as stack:
        clients = [stack.enter_context(connect(daemon.ws_url("/echo"), open_timeout=10)) for _ in range(3)]
        for client in clients:
            client.send("hi")
            assert client.recv(timeout=10) == "hi"
        started = time.monotonic()
        daemon.process.send_signal(signal.SIGTERM)
        for client in clients:
            with pytest.raises(ConnectionClosed) as closed:
                client.recv(timeout=10)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
    assert daemon.process.wait(10) == 0
    assert time.monotonic() - started < 5.0
    assert "SIGTERM: closing 3 WebSockets with 1001" in daemon.output()


def test_peer_that_ignores_the_close_is_dropped_at_the_drain_timeout(daemon_factory):
    """A client that never answers the 1001 close does not hold up the exit past drain_timeout_seconds; still exit 0."""
    daemon = daemon_factory("[limits]\ndrain_timeout_seconds = 1.0\nclose_timeout_seconds = 30.0\n")
    silent = RawClient(daemon.port)
    started = time.monotonic()
    daemon.process.send_signal(signal.SIGTERM)
    opcode, payload = silent.read_frame()
    assert (opcode, payload[:2]) == (0x8, struct.pack("!H", 1001))
    assert daemon.process.wait(10) == 0
    assert 0.9 < time.monotonic() - started < 5.0


# --- keepalive ----------------------------------------------------------------------------------


def test_client_that_stops_answering_pings_is_closed_with_1011(daemon_factory):
    """A peer that never answers pings gets a ping, then close 1011 "keepalive timeout", then TCP closes."""
    daemon = daemon_factory("[limits]\nping_interval_seconds = 1.0\npong_timeout_seconds = 1.0\n")
    silent = RawClient(daemon.port)
    opcode, _ = silent.read_frame()
    assert opcode == 0x9
    opcode, payload = silent.read_frame()
    assert (opcode, payload) == (0x8, struct.pack("!H", 1011) + b"keepalive timeout")
    assert silent.closed_by_server(timeout=15)
    wait_for_output(daemon, "code=1011 reason='keepalive timeout'")


def test_client_that_answers_pings_stays_connected(daemon_factory):
    """A client that answers pings (websockets does) stays connected over several ping intervals."""
    daemon = daemon_factory("[limits]\nping_interval_seconds = 1.0\npong_timeout_seconds = 1.0\n")
    with connect(daemon.ws_url("/echo"), open_timeout=10, ping_interval=None) as ws:
        time.sleep(2.5)  # two ping intervals and more than one pong timeout
        ws.send("alive")
        assert ws.recv(timeout=10) == "alive"


# --- SIGHUP reload of the config -----------------------------------------------------------------


def test_sighup_applies_new_limits_to_new_connections(daemon_factory):
    """After rewriting [limits] and SIGHUP, a new connection is held to the new max_message_bytes (1009)."""
    daemon = daemon_factory("[limits]\nmax_message_bytes = 1048576\n")
    config_path = next(daemon.stdout_path.parent.glob("*.toml"))
    config_path.write_text("[limits]\nmax_message_bytes = 16\nmax_frame_bytes = 125\n")
    daemon.process.send_signal(signal.SIGHUP)
    wait_for_output(daemon, "reload done")
    with connect(daemon.ws_url("/echo"), open_timeout=10) as ws:
        ws.send("x" * 32)
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009


def test_sighup_with_changed_listeners_logs_that_a_restart_is_needed(daemon_factory):
    """Listener changes are not applied on SIGHUP; the log says a restart is needed, and serving goes on."""
    from tests.integration.support import free_port

    port = free_port()
    daemon = daemon_factory(f'[[listeners]]\nendpoint = "tcp:{port}:interface=127.0.0.1"\n', port=port, listen=False)
    config_path = next(daemon.stdout_path.parent.glob("*.toml"))
    config_path.write_text(f'[[listeners]]\nendpoint = "tcp:{free_port()}:interface=127.0.0.1"\n')
    daemon.process.send_signal(signal.SIGHUP)
    wait_for_output(daemon, "reload done")
    assert "needs a restart" in daemon.output()
    assert daemon.healthy()


# --- logs --------------------------------------------------------------------------------------------


#: How each runner starts the daemon in the foreground, with no runner-level options of its own.
RUNNERS = {
    "twist": [sys.executable, "-m", "twisted"],
    "twistd": [str(Path(sys.executable).parent / "twistd"), "--nodaemon", "--pidfile="],
}


def run_plain_daemon(
    tmp_path: Path, *wsdaemon_args: str, runner: str = "twist", python_path: tuple[Path, ...] = ()
) -> tuple[subprocess.Popen[bytes], int, Path]:
    """The daemon as systemd runs it: `twist wsdaemon ...` (or `twistd -n wsdaemon ...`) with stdout not a terminal.

    ``python_path``: folders put on PYTHONPATH before the repository (e.g. one with a broken plugin).
    """
    from tests.integration.conftest import http_get
    from tests.integration.support import free_port

    port = free_port()
    out = tmp_path / f"out-{port}.log"
    command = [*RUNNERS[runner], "wsdaemon", "--listen", f"tcp:{port}:interface={LOOPBACK}", *wsdaemon_args]
    with out.open("wb") as stdout:
        process = subprocess.Popen(
            command,
            cwd=tmp_path,
            stdout=stdout,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(map(str, [*python_path, REPO_ROOT]))},
        )
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            if http_get(port, "/healthz").status == 200:
                return process, port, out
        except OSError:
            time.sleep(0.1)
    process.kill()
    pytest.fail(f"daemon did not start\n{out.read_text()}", pytrace=False)


def one_websocket_then_stop(process: subprocess.Popen[bytes], port: int) -> None:
    with connect(f"ws://{LOOPBACK}:{port}/echo", open_timeout=10) as ws:
        ws.send("log me")
        ws.recv(timeout=10)
    time.sleep(0.3)
    process.send_signal(signal.SIGTERM)
    assert process.wait(15) == 0


@pytest.mark.parametrize("runner", sorted(RUNNERS))
def test_logs_are_text_by_default_even_off_a_terminal(tmp_path, runner):
    """With stdout not a terminal, `twist wsdaemon` and `twistd -n wsdaemon` log text lines, one summary per WebSocket."""
    process, port, out = run_plain_daemon(tmp_path, runner=runner)
    one_websocket_then_stop(process, port)
    lines = out.read_text().splitlines()
    assert lines and not any(line.startswith(("{", "\x1e")) for line in lines)
    (summary,) = [line for line in lines if "websocket closed" in line]
    for field in (
        "peer=127.0.0.1:",
        "path=/echo",
        "subprotocol=None",
        "code=1000",
        "duration=",
        "bytes_in=",
        "bytes_out=",
        "messages_in=1",
        "messages_out=1",
    ):
        assert field in summary, summary


@pytest.mark.parametrize("runner", sorted(RUNNERS))
def test_log_format_json_writes_one_object_per_line(tmp_path, runner):
    """`twist wsdaemon --log-format json` and the same under `twistd -n` write JSON lines, the summary's numbers as fields."""
    process, port, out = run_plain_daemon(tmp_path, "--log-format", "json", runner=runner)
    one_websocket_then_stop(process, port)
    records = [json.loads(line) for line in out.read_text().splitlines() if line.strip()]
    assert any(record["message"].startswith("listening on") for record in records)  # every line, from the start
    (summary,) = [record for record in records if record["message"].startswith("websocket closed")]
    assert (summary["path"], summary["code"], summary["messages_in"], summary["messages_out"]) == ("/echo", 1000, 1, 1)
    assert summary["level"] == "info" and summary["bytes_in"] > 0 and summary["bytes_out"] > 0


def log_with_plugin_module(tmp_path: Path, runner: str, folder: str, source: str, *wsdaemon_args: str) -> str:
    """The whole log of a daemon started with ``<folder>/vendor_*.py`` (``source``) on PYTHONPATH, then stopped."""
    plugins = tmp_path / "site" / folder
    plugins.mkdir(parents=True)
    name = "vendor_broken" if "no_such_dependency" in source else "vendor_old"
    (plugins / f"{name}.py").write_text(source)
    process, port, out = run_plain_daemon(tmp_path, *wsdaemon_args, runner=runner, python_path=(tmp_path / "site",))
    if wsdaemon_args:  # a config naming the plugin's handler at /old
        with connect(f"ws://{LOOPBACK}:{port}/old", open_timeout=10) as ws:
            ws.send("still here")
            assert ws.recv(timeout=10) == "still here"
    process.send_signal(signal.SIGTERM)
    assert process.wait(15) == 0
    return out.read_text()


@pytest.mark.parametrize("runner", sorted(RUNNERS))
def test_a_broken_plugin_module_is_one_line_in_the_daemons_log(tmp_path, runner):
    """A plugin module that fails to import is named in one log line; after wsdaemon starts, no traceback follows.

    `twist` and `twistd` print Twisted's traceback for their own plugin scans before
    wsdaemon is imported (outside its reach, see docs/handlers.md); everything from
    wsdaemon's own scans on is the one line.
    """
    text = log_with_plugin_module(tmp_path, runner, "twisted/plugins", "import no_such_dependency_xyz\n")
    ours = [line for line in text.splitlines() if "plugin module twisted.plugins.vendor_broken " in line]
    assert len(ours) == 1, text
    assert "failed to import, so its handlers are missing: ModuleNotFoundError" in ours[0]
    after = text.split(ours[0], 1)[1]
    assert "Traceback" not in after and "Unhandled Error" not in after, text
    before = text.split(ours[0], 1)[0]
    assert before.count("Unhandled Error") <= 2, text  # twist's or twistd's own scans, before wsdaemon loads


@pytest.mark.parametrize("runner", sorted(RUNNERS))
def test_a_broken_module_in_wsdaemon_plugins_is_the_only_line_about_it(tmp_path, runner):
    """In wsdaemon_plugins/ (which twist and twistd never scan) a broken module is one log line and no traceback at all."""
    text = log_with_plugin_module(tmp_path, runner, "wsdaemon_plugins", "import no_such_dependency_xyz\n")
    about = [line for line in text.splitlines() if "vendor_broken" in line or "no_such_dependency" in line]
    assert len(about) == 1, text
    assert "plugin module wsdaemon_plugins.vendor_broken (" in about[0]
    assert "failed to import, so its handlers are missing: ModuleNotFoundError" in about[0]
    assert "Traceback" not in text and "Unhandled Error" not in text, text


@pytest.mark.parametrize("runner", sorted(RUNNERS))
def test_a_plugin_left_in_twisted_plugins_serves_with_one_notice(tmp_path, runner):
    """A handler plugin still in twisted/plugins/ (the old location) serves, and the log recommends the move once."""
    config = tmp_path / "old.toml"
    config.write_text('[[endpoints]]\npath = "/old"\nhandler = "old"\n')
    source = (
        'from wsdaemon.plugins import HandlerPlugin\n\nold = HandlerPlugin("old", "wsdaemon.handlers.echo", "old")\n'
    )
    text = log_with_plugin_module(tmp_path, runner, "twisted/plugins", source, "--config", str(config))
    notices = [line for line in text.splitlines() if "handler plugin 'old'" in line]
    assert len(notices) == 1, text
    assert "is in twisted/plugins/, the old location" in notices[0] and "wsdaemon_plugins/" in notices[0]


# --- --check-config ------------------------------------------------------------------------------


def check(tmp_path: Path, text: str, program: str = "twistd") -> subprocess.CompletedProcess[str]:
    config = tmp_path / "checked.toml"
    config.write_text(text)
    executable = str(Path(sys.executable).parent / program)
    return subprocess.run(
        [executable, "wsdaemon", "--config", str(config), "--check-config"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )


def test_twistd_check_config_passes_a_good_config_without_listening(tmp_path):
    """`twistd wsdaemon --check-config` exits 0, prints listeners and limits, and binds nothing."""
    from tests.integration.support import free_port

    port = free_port()
    issued = ThrowawayCA(tmp_path / "pki").issue("localhost", ("localhost",))
    text = f'[[listeners]]\nendpoint = "tcp:{port}:interface=127.0.0.1"\ntls = true\ncertificate = "{issued.cert_path}"\nprivate_key = "{issued.key_path}"\n'
    result = check(tmp_path, text)
    assert result.returncode == 0, result.stderr
    assert (
        f"tcp:{port}:interface=127.0.0.1  (TLS >= 1.2" in result.stdout
        and "max_message_bytes = 1048576" in result.stdout
    )
    with socket.socket() as sock:
        sock.bind((LOOPBACK, port))  # nothing is listening there (and nothing was left behind)


def test_check_config_fails_a_bad_certificate_with_exit_1(tmp_path):
    """`twist wsdaemon --check-config` exits 1 naming the certificate key when the file is not a certificate."""
    junk = tmp_path / "junk.pem"
    junk.write_text("junk\n")
    text = f'[[listeners]]\nendpoint = "tcp:8443"\ntls = true\ncertificate = "{junk}"\nprivate_key = "{junk}"\n'
    result = check(tmp_path, text, program="twist")
    assert result.returncode == 1
    assert "listeners[0].certificate: expected a PEM certificate chain" in result.stderr
