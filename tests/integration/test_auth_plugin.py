"""A third-party authenticator plugin (examples/session-auth), installed for real, asking a real HTTP backend.

The example is installed with pip into a temporary folder put on the daemon's PYTHONPATH, as
the shout handler is; the backend is a small HTTP server run by the test on 127.0.0.1 that
says yes, says no, or is slow, and a port nobody listens on stands for a backend that is down.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from tests.integration.support import LOOPBACK, free_port, wait_for_output

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "session-auth"
TIMEOUT = 10.0
CONFIG = """
[[endpoints]]
path = "/app"
handler = "echo"
[endpoints.auth]
type = "session"
backend_url = "http://127.0.0.1:{backend}/session"
timeout_seconds = 1

[[endpoints]]
path = "/down"
handler = "echo"
[endpoints.auth]
type = "session"
backend_url = "http://127.0.0.1:{down}/session"
"""


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """examples/session-auth built and installed with pip into a temporary folder."""
    work = tmp_path_factory.mktemp("session-auth")
    source = work / "source"
    shutil.copytree(EXAMPLE, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    target = work / "site"
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation"]
    result = subprocess.run(
        [*command, "--target", str(target), str(source)], capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (target / "wsdaemon_plugins" / "wsdaemon_session_auth.py").is_file()
    return target


@pytest.fixture
def on_pythonpath(installed: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Daemons and commands started by this test see the installed example."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(installed), os.environ.get("PYTHONPATH")])))
    return installed


class Backend(BaseHTTPRequestHandler):
    """The deployment's session service: session=good is alice, session=slow takes its time, others are unknown."""

    release = threading.Event()
    asked: list[str] = []

    def do_GET(self) -> None:
        cookie = self.headers.get("Cookie", "")
        self.asked.append(cookie)
        if cookie == "session=slow":
            self.release.wait(TIMEOUT)
        if cookie == "session=good":
            body = json.dumps({"user": "alice", "channels": ["/chat/a"]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        self.send_response(401)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


class QuietServer(ThreadingHTTPServer):
    """The backend's server; a client (the daemon) hanging up on the slow answer is expected, not printed."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Nothing to report."""


@pytest.fixture
def backend() -> Iterator[int]:
    """The backend on 127.0.0.1; yields its port."""
    server = QuietServer((LOOPBACK, 0), Backend)
    server.daemon_threads = True
    Backend.release.clear()
    Backend.asked.clear()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        Backend.release.set()
        server.shutdown()
        server.server_close()


@pytest.fixture
def session_daemon(on_pythonpath: Path, backend: int, daemon_factory: Any) -> Any:
    """A daemon whose /app asks the backend (1 s at most) and whose /down asks a port nobody listens on."""
    return daemon_factory(CONFIG.format(backend=backend, down=free_port()))


def status_of(url: str, cookie: str | None) -> int:
    """The status an upgrade to ``url`` with ``cookie`` gets (101 when it opens)."""
    headers = {"Cookie": cookie} if cookie else {}
    try:
        with connect(url, proxy=None, open_timeout=TIMEOUT, additional_headers=headers) as client:
            client.send("hi")
            assert client.recv(TIMEOUT) == "hi"
            return 101
    except InvalidStatus as refused:
        return refused.response.status_code


def test_list_authenticators_shows_the_installed_plugin(on_pythonpath):
    """--list-authenticators lists the third-party "session" next to none, jwt and basic."""
    result = subprocess.run(
        [sys.executable, "-m", "twisted", "wsdaemon", "--list-authenticators"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    names = {line.split(":")[0] for line in result.stdout.splitlines() if not line.startswith(" ")}
    assert {"none", "jwt", "basic", "session"} <= names


def test_backend_yes_opens_and_no_gets_401(session_daemon):
    """The plugin is found and used: the backend's yes opens the WebSocket, its no gets 401."""
    assert status_of(session_daemon.ws_url("/app"), "session=good") == 101
    assert status_of(session_daemon.ws_url("/app"), "session=stolen") == 401
    assert status_of(session_daemon.ws_url("/app"), None) == 401
    assert Backend.asked == ["session=good", "session=stolen"]


def test_slow_backend_gets_503_after_timeout_seconds(session_daemon):
    """A backend that does not answer within timeout_seconds gets the client 503 (fail closed)."""
    assert status_of(session_daemon.ws_url("/app"), "session=slow") == 503
    wait_for_output(session_daemon, "no answer within 1.0 s")


def test_backend_down_gets_503(session_daemon):
    """A backend nobody listens for gets the client 503, and the log says it was unreachable."""
    assert status_of(session_daemon.ws_url("/down"), "session=good") == 503
    wait_for_output(session_daemon, "session: backend unreachable")
    assert "session=good" not in session_daemon.output()


def test_example_own_tests_pass_against_the_installed_package(installed, tmp_path):
    """The example's own tests (a fake backend, no sockets) pass against the installed copy."""
    tests = tmp_path / "tests"
    shutil.copytree(EXAMPLE / "tests", tests)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(installed), os.environ.get("PYTHONPATH")])))
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tests)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
