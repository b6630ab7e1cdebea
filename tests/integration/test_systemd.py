"""systemd for real: socket activation with systemd-socket-activate, sd_notify, the watchdog, the unit files.

There is no systemd PID 1 here: ``systemd-socket-activate`` (Debian package ``systemd``)
binds the sockets and execs the daemon with ``LISTEN_FDS``; the test plays the service
manager by reading ``NOTIFY_SOCKET`` datagrams itself. Everything stays on 127.0.0.1.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from websockets.sync.client import connect

from tests.certs import ThrowawayCA
from tests.integration.support import free_port

LOOPBACK = "127.0.0.1"
REPO_ROOT = Path(__file__).resolve().parents[2]
ACTIVATE = shutil.which("systemd-socket-activate")
ANALYZE = shutil.which("systemd-analyze")


def require(tool: str | None, name: str) -> str:
    """The tool's path; CI installs Debian's systemd package, so a missing tool is a failure."""
    if tool is None:
        pytest.fail(f"{name} missing: apt-get install systemd")
    return tool


class NotifySocket:
    """The service manager's end of sd_notify: a bound datagram socket, abstract or in a folder."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + address[1:] if address.startswith("@") else address)
        self.received: list[list[str]] = []

    def wait_for(self, field: str, count: int = 1, timeout: float = 15.0) -> list[list[str]]:
        """Read messages until ``count`` of them start with ``field``; all messages so far."""
        deadline = time.monotonic() + timeout
        while sum(message[0] == field for message in self.received) < count:
            left = deadline - time.monotonic()
            if left <= 0:
                pytest.fail(f"no {count}x {field} within {timeout} s; got {self.received}", pytrace=False)
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            self.received.append(data.decode().split("\n"))
        return self.received

    def close(self) -> None:
        self.sock.close()


class Activated:
    """The daemon started by systemd-socket-activate on two sockets (plain and TLS)."""

    def __init__(self, workdir: Path, notify: NotifySocket, extra_env: dict[str, str], extra_config: str = "") -> None:
        self.http_port, self.tls_port = free_port(), free_port()
        self.ca = ThrowawayCA(workdir / "pki")
        server = self.ca.issue("localhost", ("localhost",))
        config = workdir / "wsdaemon.toml"
        config.write_text(
            '[[listeners]]\nendpoint = "systemd:domain=INET:name=wsdaemon-http"\n'
            '[[listeners]]\nendpoint = "systemd:domain=INET:name=wsdaemon-https"\ntls = true\n'
            f'certificate = "{server.cert_path}"\nprivate_key = "{server.key_path}"\n'
            "[limits]\ndrain_timeout_seconds = 5.0\n" + extra_config
        )
        env_args = [
            f"--setenv={name}={value}"
            for name, value in {"NOTIFY_SOCKET": notify.address, "PYTHONUNBUFFERED": "1", **extra_env}.items()
        ]
        self.log = workdir / "daemon.log"
        command = [
            require(ACTIVATE, "systemd-socket-activate"),
            f"--listen={LOOPBACK}:{self.http_port}",
            f"--listen={LOOPBACK}:{self.tls_port}",
            "--fdname=wsdaemon-http:wsdaemon-https",
            *env_args,
        ]
        command += [sys.executable, "-m", "twisted", "wsdaemon", "--config", str(config)]
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                command, cwd=REPO_ROOT, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )
        self._wait_for_sockets()

    def _wait_for_sockets(self) -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(
                    (LOOPBACK, self.tls_port), timeout=1
                ).close()  # the first connection execs the daemon
                return
            except OSError:
                time.sleep(0.05)
        pytest.fail(f"systemd-socket-activate did not listen\n{self.output()}", pytrace=False)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def healthz(self) -> bytes:
        with socket.create_connection((LOOPBACK, self.http_port), timeout=15) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := sock.recv(4096):
                data += chunk
        return data

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


@pytest.fixture
def notify(tmp_path: Path) -> Iterator[NotifySocket]:
    """A NOTIFY_SOCKET in the abstract namespace ("@..."), as systemd uses."""
    sock = NotifySocket(f"@wsdaemon-test-{os.getpid()}-{tmp_path.name}")
    yield sock
    sock.close()


@pytest.fixture
def activate(tmp_path: Path, notify: NotifySocket) -> Iterator[Callable[..., Activated]]:
    """Start the daemon under systemd-socket-activate (extra config text, extra environment); stopped at teardown."""
    started: list[Activated] = []

    def start(extra_config: str = "", **extra_env: str) -> Activated:
        started.append(Activated(tmp_path, notify, extra_env, extra_config))
        return started[-1]

    yield start
    for daemon in started:
        daemon.stop()
        assert "Traceback (most recent call last)" not in daemon.output(), daemon.output()


@pytest.fixture
def activated(activate: Callable[..., Activated]) -> Activated:
    """The daemon under systemd-socket-activate with NOTIFY_SOCKET set."""
    return activate()


def test_socket_activation_serves_http_websocket_and_wss(activated, notify):
    """On sockets passed by systemd, the daemon serves /healthz, ws:// and wss:// (TLS on an adopted socket)."""
    assert activated.healthz().startswith(b"HTTP/1.1 200 ")
    with connect(f"ws://{LOOPBACK}:{activated.http_port}/echo", open_timeout=10) as ws:
        ws.send("activated")
        assert ws.recv(timeout=10) == "activated"
    context = ssl.create_default_context(cafile=str(activated.ca.path))
    raw = socket.create_connection((LOOPBACK, activated.tls_port), timeout=10)
    with connect(
        f"wss://localhost:{activated.tls_port}/echo",
        sock=raw,
        ssl=context,
        server_hostname="localhost",
        open_timeout=10,
    ) as ws:
        ws.send("over adopted TLS")
        assert ws.recv(timeout=10) == "over adopted TLS"


def test_notify_ready_reload_and_stopping(activated, notify):
    """READY=1 once listening, RELOADING=1 then READY=1 on SIGHUP, STOPPING=1 on SIGTERM, then exit 0."""
    messages = notify.wait_for("READY=1")
    ready = next(message for message in messages if message[0] == "READY=1")
    assert ready[1].startswith("STATUS=") and "connections" in ready[1]
    activated.process.send_signal(signal.SIGHUP)
    messages = notify.wait_for("READY=1", count=2)
    firsts = [message[0] for message in messages]
    assert firsts.index("RELOADING=1") < len(firsts) - 1 - firsts[::-1].index("READY=1")
    reloading = next(message for message in messages if message[0] == "RELOADING=1")
    assert reloading[1].startswith("MONOTONIC_USEC=")
    assert activated.stop() == 0
    notify.wait_for("STOPPING=1")


def test_watchdog_pings_from_the_reactor(activate, notify):
    """With WATCHDOG_USEC=1 s the daemon sends WATCHDOG=1 about every 0.5 s."""
    activate(WATCHDOG_USEC="1000000")
    notify.wait_for("READY=1")
    started = time.monotonic()
    notify.wait_for("WATCHDOG=1", count=4, timeout=5)
    assert time.monotonic() - started < 4


def test_socket_activation_with_two_workers_is_ready_once_after_both(activate, notify):
    """With workers = 2 on systemd's sockets: READY=1 once, after both workers listen; ws and wss on both; exit 0."""
    activated = activate("[process]\nworkers = 2\n")
    notify.wait_for("READY=1")
    at_ready = activated.output()
    assert "all 2 workers ready" in at_ready
    for index in (1, 2):
        assert f"worker={index} listening on systemd:domain=INET:name=wsdaemon-https" in at_ready
    assert activated.healthz().startswith(b"HTTP/1.1 200 ")
    context = ssl.create_default_context(cafile=str(activated.ca.path))
    served: set[str] = set()
    for number in range(100):  # one at a time until both workers served one: the kernel's spread is uneven
        raw = socket.create_connection((LOOPBACK, activated.tls_port), timeout=10)
        with connect(
            f"wss://localhost:{activated.tls_port}/echo", sock=raw, ssl=context, server_hostname="localhost"
        ) as ws:
            ws.send(f"wss {number}")
            assert ws.recv(timeout=10) == f"wss {number}"
        served = set(re.findall(r"worker=(\d) websocket closed", activated.output()))
        if served == {"1", "2"}:
            break
    assert served == {"1", "2"}, activated.output()
    killed = re.findall(r"worker 1 \(pid (\d+)\) ready", at_ready)[-1]
    os.kill(int(killed), signal.SIGKILL)  # it is replaced, and systemd hears no second READY=1
    deadline = time.monotonic() + 20
    while re.findall(r"worker 1 \(pid (\d+)\) ready", activated.output())[-1] == killed:
        if time.monotonic() > deadline:
            pytest.fail(f"worker 1 not replaced\n{activated.output()}", pytrace=False)
        time.sleep(0.05)
    assert activated.stop() == 0
    messages = notify.wait_for("STOPPING=1")
    assert [message[0] for message in messages].count("READY=1") == 1, messages


# --- the unit files ------------------------------------------------------------------------------


def test_unit_files_pass_systemd_analyze_verify(tmp_path: Path):
    """etc/wsdaemon.service and etc/wsdaemon.socket pass systemd-analyze verify (ExecStart pointed at this venv)."""
    require(ANALYZE, "systemd-analyze")
    twist = Path(sys.executable).parent / "twist"
    assert twist.exists(), f"{twist} (installed with the package) is what the unit runs"
    service = (REPO_ROOT / "etc" / "wsdaemon.service").read_text().replace("/opt/wsdaemon/bin/twist", str(twist))
    (tmp_path / "wsdaemon.service").write_text(service)
    shutil.copy(REPO_ROOT / "etc" / "wsdaemon.socket", tmp_path / "wsdaemon.socket")
    result = subprocess.run(
        [ANALYZE, "verify", "--man=no", "wsdaemon.service", "wsdaemon.socket"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr


def test_service_unit_is_notify_with_reload_restart_and_hardening():
    """The unit is Type=notify, reloads with SIGHUP, restarts on failure, runs sandboxed as its own user."""
    lines = {line.strip() for line in (REPO_ROOT / "etc" / "wsdaemon.service").read_text().splitlines()}
    for expected in (
        "Type=notify",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "Restart=on-failure",
        "User=wsdaemon",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "CapabilityBoundingSet=CAP_NET_BIND_SERVICE",
        "WatchdogSec=30",
    ):
        assert expected in lines, expected
    assert any(line.startswith("ExecStartPre=") and line.endswith("--check-config") for line in lines)


def test_socket_unit_names_its_socket_for_the_systemd_endpoint():
    """wsdaemon.socket's FileDescriptorName matches the endpoint documented for it."""
    text = (REPO_ROOT / "etc" / "wsdaemon.socket").read_text()
    assert "FileDescriptorName=wsdaemon-https" in text
    assert 'endpoint = "systemd:domain=INET6:name=wsdaemon-https"' in text


def readme_activate_command(port: int) -> list[str]:
    """The README's systemd-socket-activate example, on ``port``, run with this interpreter."""
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    (line,) = [line for line in readme.splitlines() if line.startswith("systemd-socket-activate ")]
    argv = line.replace("127.0.0.1:8080", f"{LOOPBACK}:{port}").split()
    twist = argv.index("twist")
    return [
        require(ACTIVATE, "systemd-socket-activate"),
        *argv[1:twist],
        sys.executable,
        "-m",
        "twisted",
        *argv[twist + 1 :],
    ]


def activate_and_get_healthz(command: list[str]) -> tuple[str, str]:
    """Run the command, GET /healthz on its socket (which starts the daemon); (reply or error, daemon output)."""
    port = int(next(arg for arg in command if arg.startswith(f"{LOOPBACK}:")).split(":")[1])
    process = subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                sock = socket.create_connection((LOOPBACK, port), timeout=15)
                break
            except ConnectionRefusedError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        with sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            try:
                reply = sock.recv(4096).decode("latin-1")
            except ConnectionResetError as error:
                reply = repr(error)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
    return reply, output


def test_the_readmes_named_socket_example_works_and_an_unnamed_one_does_not():
    """As the README says: with --fdname the socket is adopted; without it, index=0 finds no socket."""
    reply, output = activate_and_get_healthz(readme_activate_command(free_port()))
    assert reply.startswith("HTTP/1.1 200 "), output
    unnamed = [arg for arg in readme_activate_command(free_port()) if not arg.startswith("--fdname=")]
    unnamed[-1] = "systemd:domain=INET:index=0"
    reply, output = activate_and_get_healthz(unnamed)
    assert not reply.startswith("HTTP/1.1 200 ")
    assert "listeners[0].endpoint" in output and "list index out of range" in output
