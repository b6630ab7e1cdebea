"""Tier 3 fixtures: the real daemon, spawned as a subprocess on 127.0.0.1.

Every test in this folder is marked ``integration`` (deselect with
``-m "not integration"``).  The daemon runs as ``python -m twisted wsdaemon``
(the same program as ``twist wsdaemon``) with the repository root as its
working directory, so ``twisted/plugins`` is found even without an install.
Nothing here talks to any address but 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import http.client
import itertools
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.integration.support import free_port

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
LOOPBACK = "127.0.0.1"
STARTUP_TIMEOUT_SECONDS = 15.0
STOP_TIMEOUT_SECONDS = 15.0
# Lines that mean the daemon hit an error it did not expect; house rule 4 says
# nothing a peer does may produce one.
UNEXPECTED_ERROR_MARKERS = ("Traceback (most recent call last)", "Unhandled Error")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test collected from this folder as ``integration``."""
    for item in items:
        if Path(item.path).resolve().is_relative_to(HERE):
            item.add_marker(pytest.mark.integration)


def daemon_command(
    port: int,
    config_path: Path | None = None,
    extra_args: Sequence[str] = (),
    listen: bool = True,
    twist_args: Sequence[str] = (),
) -> list[str]:
    """The argv that starts the daemon on ``127.0.0.1:port`` (``listen=False``: on the config's listeners).

    ``twist_args`` go to ``twist`` itself, before ``wsdaemon`` (e.g. ``--log-level=debug``).
    """
    command = [sys.executable, "-m", "twisted", "--log-format=text", *twist_args, "wsdaemon"]
    if listen:
        command += ["--listen", f"tcp:{port}:interface={LOOPBACK}"]
    if config_path is not None:
        command += ["--config", str(config_path)]
    return command + list(extra_args)


def daemon_environment() -> dict[str, str]:
    """The daemon's environment: ours, unbuffered, with no proxy for loopback."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env["NO_PROXY"] = env["no_proxy"] = LOOPBACK
    return env


@dataclass(frozen=True)
class HttpReply:
    """What one plain HTTP request got back."""

    status: int
    headers: http.client.HTTPMessage
    body: bytes


def http_get(port: int, path: str, headers: dict[str, str] | None = None) -> HttpReply:
    """One plain HTTP/1.1 GET to the daemon on 127.0.0.1 (no proxy involved)."""
    connection = http.client.HTTPConnection(LOOPBACK, port, timeout=10)
    try:
        connection.request("GET", path, headers=headers or {})
        response = connection.getresponse()
        return HttpReply(response.status, response.headers, response.read())
    finally:
        connection.close()


@dataclass
class Daemon:
    """A running daemon: where it listens and what it printed."""

    port: int
    process: subprocess.Popen[bytes]
    stdout_path: Path
    stderr_path: Path

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``, without a trailing slash."""
        return f"http://{LOOPBACK}:{self.port}"

    def ws_url(self, path: str = "/echo") -> str:
        """The ``ws://`` URL of one endpoint."""
        return f"ws://{LOOPBACK}:{self.port}{path}"

    def output(self) -> str:
        """Everything the daemon wrote so far, stderr first."""
        err = self.stderr_path.read_text(errors="replace")
        out = self.stdout_path.read_text(errors="replace")
        return f"--- daemon stderr ---\n{err}\n--- daemon stdout ---\n{out}"

    def healthy(self) -> bool:
        """Whether /healthz answers 200 right now."""
        try:
            return http_get(self.port, "/healthz").status == 200
        except OSError:
            return False

    def wait_until_healthy(self) -> None:
        """Poll /healthz until it answers, or fail with the daemon's output."""
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise DaemonExited(self)
            if self.healthy():
                return
            time.sleep(0.1)
        pytest.fail(f"daemon not healthy within {STARTUP_TIMEOUT_SECONDS} s\n{self.output()}", pytrace=False)

    def stop(self) -> int:
        """SIGTERM, then SIGKILL if it lingers; returns the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


class DaemonExited(Exception):
    """The daemon process ended before it became healthy."""

    def __init__(self, daemon: Daemon) -> None:
        super().__init__(f"daemon exited with status {daemon.process.returncode}\n{daemon.output()}")
        self.daemon = daemon


def write_config(workdir: Path, config_text: str | None, name: str = "wsdaemon.toml") -> Path | None:
    """Write ``config_text`` as a TOML file in ``workdir`` (None: no file)."""
    if config_text is None:
        return None
    path = workdir / name
    path.write_text(config_text)
    return path


def spawn_daemon(
    workdir: Path,
    port: int,
    config_path: Path | None,
    extra_args: Sequence[str],
    listen: bool = True,
    env: dict[str, str] | None = None,
    twist_args: Sequence[str] = (),
) -> Daemon:
    """Start one daemon process whose output goes to files in ``workdir`` (``env`` adds variables)."""
    stdout_path, stderr_path = workdir / f"daemon-{port}.out", workdir / f"daemon-{port}.err"
    with stdout_path.open("wb") as stdout, stderr_path.open("wb") as stderr:
        process = subprocess.Popen(
            daemon_command(port, config_path, extra_args, listen, twist_args),
            cwd=REPO_ROOT,
            env={**daemon_environment(), **(env or {})},
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
        )
    return Daemon(port, process, stdout_path, stderr_path)


@contextlib.contextmanager
def running_daemon(
    workdir: Path,
    config_text: str | None = None,
    extra_args: Sequence[str] = (),
    port: int | None = None,
    listen: bool = True,
    env: dict[str, str] | None = None,
    twist_args: Sequence[str] = (),
) -> Iterator[Daemon]:
    """A healthy daemon for the duration of the block, stopped afterwards.

    Without a ``port``, a free one is picked; it can be taken by someone else
    between our check and the daemon's bind, so "address already in use" is
    retried with another. With ``listen=False`` the config's own listeners are
    used, and one of them must serve plain HTTP on ``port`` (for the health check).
    """
    config_path = write_config(workdir, config_text)
    attempts = 3 if port is None else 1
    for attempt in range(attempts):
        daemon = spawn_daemon(workdir, port or free_port(), config_path, extra_args, listen, env, twist_args)
        try:
            daemon.wait_until_healthy()
            break
        except DaemonExited as exited:
            if "Address already in use" not in daemon.output() or attempt == attempts - 1:
                pytest.fail(str(exited), pytrace=False)
        except BaseException:
            daemon.stop()
            raise
    try:
        yield daemon
    finally:
        daemon.stop()
    output = daemon.output()
    if any(marker in output for marker in UNEXPECTED_ERROR_MARKERS):
        pytest.fail(f"the daemon logged an unexpected error\n{output}", pytrace=False)


DaemonFactory = Callable[..., Daemon]


@pytest.fixture
def daemon_factory(tmp_path: Path) -> Iterator[DaemonFactory]:
    """Start daemons (config text, extra argv, port); all are stopped at teardown."""
    counter = itertools.count()
    with contextlib.ExitStack() as stack:

        def start(
            config_text: str | None = None,
            extra_args: Sequence[str] = (),
            port: int | None = None,
            listen: bool = True,
            env: dict[str, str] | None = None,
            twist_args: Sequence[str] = (),
        ) -> Daemon:
            workdir = tmp_path / f"daemon{next(counter)}"
            workdir.mkdir()
            return stack.enter_context(running_daemon(workdir, config_text, extra_args, port, listen, env, twist_args))

        yield start


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """One daemon with the default configuration, shared by a test module."""
    with running_daemon(tmp_path_factory.mktemp("daemon")) as running:
        yield running


@pytest.fixture(name="http_get")
def http_get_fixture() -> Callable[..., HttpReply]:
    """The plain-HTTP GET helper, for tests (conftest modules are not imported)."""
    return http_get


@dataclass(frozen=True)
class Exited:
    """How a daemon run that was expected to stop by itself ended."""

    returncode: int
    stdout: str
    stderr: str
    config_path: Path


@pytest.fixture
def run_daemon_expecting_exit(tmp_path: Path) -> Callable[[str], Exited]:
    """Start the daemon with a config text and wait for it to exit by itself."""

    def run(config_text: str) -> Exited:
        config_path = write_config(tmp_path, config_text, name="bad.toml")
        assert config_path is not None
        daemon = spawn_daemon(tmp_path, free_port(), config_path, ())
        try:
            daemon.process.wait(STARTUP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            daemon.stop()
            pytest.fail(f"the daemon kept running with config:\n{config_text}\n{daemon.output()}", pytrace=False)
        return Exited(
            daemon.process.returncode,
            daemon.stdout_path.read_text(errors="replace"),
            daemon.stderr_path.read_text(errors="replace"),
            config_path,
        )

    return run


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[Any]:
    """A running redis-server, killed by PID at teardown (a missing redis-server fails, it is not skipped)."""
    if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
        pytest.fail("redis-server and redis-cli are needed (Debian: apt-get install redis-server)", pytrace=False)
    from tests.integration.redis_support import RedisServer

    server = RedisServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.kill()
