"""``python -m wsdaemon.client`` against a real daemon: replies after end of input, exit codes, reconnect.

The client runs as a subprocess, as a person or a shell script runs it; the daemon too.
"""

from __future__ import annotations

import queue
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.support import LOOPBACK, CuttableProxy, free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 30.0
PYTHON = sys.executable

CONFIG = f"""\
[[endpoints]]
path = "/echo"
handler = "echo"

# A line-buffered program: each message in, one reply out.
[[endpoints]]
path = "/run"
handler = "process"
[endpoints.options]
command = ["{PYTHON}", "-u", "-c", "import sys\\nfor line in sys.stdin: print('got', line.strip())"]

# Answers one line, then exits 0: the daemon closes with 1000.
[[endpoints]]
path = "/once"
handler = "process"
[endpoints.options]
command = ["{PYTHON}", "-u", "-c", "print('once', input())"]

# Exits 3 after the first line: the daemon closes with 1011.
[[endpoints]]
path = "/fail"
handler = "process"
[endpoints.options]
command = ["{PYTHON}", "-u", "-c", "input(); raise SystemExit(3)"]
"""


def run_client(url: str, *args: str, text: str = "") -> subprocess.CompletedProcess[str]:
    """The client with ``text`` on standard input, run to its end."""
    return subprocess.run(
        [PYTHON, "-m", "wsdaemon.client", url, *args],
        input=text,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        cwd=REPO_ROOT,
        check=False,
    )


class Interactive:
    """The client with a pipe for standard input kept open, its output read line by line."""

    def __init__(self, url: str, *args: str) -> None:
        self.process = subprocess.Popen(
            [PYTHON, "-m", "wsdaemon.client", url, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO_ROOT,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.errors: list[str] = []
        threading.Thread(target=self._pump, args=(self.process.stdout, self.lines.put), daemon=True).start()
        threading.Thread(target=self._pump, args=(self.process.stderr, self.errors.append), daemon=True).start()

    @staticmethod
    def _pump(stream, put) -> None:
        for line in stream:
            put(line.rstrip("\n"))

    def send(self, line: str) -> None:
        """Type one line."""
        assert self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def next_line(self) -> str:
        """The next line printed, waiting for it."""
        try:
            return self.lines.get(timeout=TIMEOUT)
        except queue.Empty:
            pytest.fail(f"nothing printed within {TIMEOUT} s; stderr: {self.errors}", pytrace=False)

    def wait_for_error(self, text: str) -> None:
        """Wait until a stderr line contains ``text``."""
        deadline = TIMEOUT
        while deadline > 0 and not any(text in line for line in self.errors):
            threading.Event().wait(0.05)
            deadline -= 0.05
        assert any(text in line for line in self.errors), self.errors

    def end_input(self) -> int:
        """Close standard input and wait for the exit status."""
        assert self.process.stdin is not None
        self.process.stdin.close()
        return self.wait()

    def wait(self) -> int:
        """The exit status, once the client exits by itself."""
        try:
            return self.process.wait(TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            pytest.fail(f"the client did not exit; stderr: {self.errors}", pytrace=False)

    def stop(self) -> None:
        """Make sure the process is gone."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Iterator:
    """One daemon with the echo and process endpoints above, shared by the module."""
    from tests.integration.conftest import running_daemon

    with running_daemon(tmp_path_factory.mktemp("cli"), CONFIG) as daemon:
        yield daemon


@pytest.fixture
def interactive() -> Iterator:
    """Start interactive clients; all are killed at teardown if still running."""
    started: list[Interactive] = []

    def start(url: str, *args: str) -> Interactive:
        started.append(Interactive(url, *args))
        return started[-1]

    yield start
    for client in started:
        client.stop()


def test_piped_input_gets_every_reply_of_a_process_endpoint(served):
    """printf 'a\\nb\\nc\\n' | python -m wsdaemon.client URL prints all three replies and exits 0."""
    result = run_client(served.ws_url("/run"), text="a\nb\nc\n")
    assert (result.returncode, result.stdout) == (0, "got a\ngot b\ngot c\n"), result.stderr


def test_piped_input_gets_every_echo_and_a_last_line_without_newline(served):
    """Many piped lines are all echoed, in order, the last one without its newline too."""
    lines = [f"line {i} ✓" for i in range(200)]
    result = run_client(served.ws_url("/echo"), "--wait", "0.5", text="\n".join(lines))
    assert (result.returncode, result.stdout.splitlines()) == (0, lines), result.stderr


def test_wait_zero_closes_at_once(served):
    """--wait 0 closes right after the input ends, normally (exit 0)."""
    result = run_client(served.ws_url("/echo"), "--wait", "0", text="")
    assert result.returncode == 0, result.stderr


def test_a_servers_normal_close_ends_the_client_with_status_0(served):
    """With --wait inf the client waits for the server, whose 1000 close means exit 0 and nothing on stderr."""
    result = run_client(served.ws_url("/once"), "--wait", "inf", text="x\n")
    assert (result.returncode, result.stdout, result.stderr) == (0, "once x\n", "")


def test_a_servers_1011_close_is_reported_with_status_1(served):
    """A program that fails makes the daemon close with 1011: the client says so on stderr and exits 1."""
    result = run_client(served.ws_url("/fail"), "--wait", "inf", text="x\n")
    assert result.returncode == 1
    assert result.stderr.splitlines() == ["wsdaemon.client: the server closed the connection with 1011: program failed"]


def test_an_unknown_path_is_one_line_and_status_1(served):
    """A 404 to the upgrade is one stderr line naming the status; exit 1."""
    result = run_client(served.ws_url("/nowhere"))
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"wsdaemon.client: {served.ws_url('/nowhere')}: upgrade refused: server answered 404 Not Found"
    ]


def test_nothing_listening_is_one_line_and_status_1():
    """A refused connection is one stderr line; exit 1, nothing on stdout."""
    url = f"ws://{LOOPBACK}:{free_port()}/echo"
    result = run_client(url)
    assert (result.returncode, result.stdout) == (1, "")
    assert len(result.stderr.splitlines()) == 1 and "cannot connect" in result.stderr and "refused" in result.stderr


def test_a_bad_url_is_one_line_and_status_1():
    """An http:// URL is refused before connecting, in one line."""
    result = run_client("http://127.0.0.1/echo")
    assert result.returncode == 1 and result.stderr.splitlines() == [
        "wsdaemon.client: not a ws:// or wss:// URL: 'http://127.0.0.1/echo'"
    ]


def test_daemon_shutdown_prints_1001_and_exits_1(daemon_factory, interactive):
    """Without --reconnect, a daemon going away (1001) is printed with its reason and the exit status is 1."""
    daemon = daemon_factory(CONFIG)
    client = interactive(daemon.ws_url("/echo"))
    client.send("hello")
    assert client.next_line() == "hello"
    daemon.stop()
    assert client.wait() == 1
    assert any("1001" in line and "shutting down" in line for line in client.errors), client.errors


def test_reconnect_comes_back_after_a_daemon_restart(daemon_factory, interactive):
    """With --reconnect, a restarted daemon is reached again by itself and lines typed meanwhile are sent."""
    first = daemon_factory(CONFIG)
    client = interactive(first.ws_url("/echo"), "--reconnect", "--wait", "0.5")
    client.send("before")
    assert client.next_line() == "before"
    first.stop()
    client.wait_for_error("reconnecting in")
    client.send("while down")
    daemon_factory(CONFIG, port=first.port)
    assert client.next_line() == "while down"
    client.send("after")
    assert client.next_line() == "after"
    assert client.end_input() == 0
    assert any("1001" in line for line in client.errors), client.errors


def test_recover_resumes_an_envelope_channel_after_a_cut_network(daemon_factory, interactive, tmp_path):
    """--recover on the built-in /chat/ channels: what was published while the link was cut is printed once, in order."""
    from tests.integration.test_broker_redis import TOKEN, api

    token_file = tmp_path / "api-token"
    token_file.write_text(TOKEN + "\n")
    daemon = daemon_factory(f'[api]\ntoken_file = "{token_file}"\n')  # the built-in endpoints: /echo and /chat/
    relay = CuttableProxy(daemon.port)
    try:
        client = interactive(f"ws://{LOOPBACK}:{relay.port}/chat/cli", "--recover", "--wait", "0.5")
        client.send("one")  # our own message comes back once we are subscribed: the position is known
        assert client.next_line() == "one"
        relay.cut()
        client.wait_for_error("reconnecting in")
        for text in ("two", "three"):
            status, answer = api(daemon, "POST", "/api/publish", {"channel": "/chat/cli", "data": text})
            assert status == 200, answer
        relay.restore()
        assert [client.next_line(), client.next_line()] == ["two", "three"]
        client.send("four")
        assert client.next_line() == "four"
        assert client.end_input() == 0
        assert client.lines.empty(), "a message was printed twice"
        assert not any("missed" in line for line in client.errors), client.errors
    finally:
        relay.close()
