"""The built-in handlers on a real daemon: real sockets on 127.0.0.1 and real child processes.

* process: a small Python script and ``cat``, their environment, exit codes, the
  per-endpoint cap and the SIGTERM/SIGKILL ending;
* tcp: a relay to a real TCP echo server, and to a port where nothing listens;
* broadcast: 100 members, one of which stops reading: it is disconnected while
  the other 99 receive every message in order;
* a third-party handler that raises: only its connection closes, with 1011.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import socketserver
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect as async_connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

TIMEOUT = 10.0
LOOPBACK = "127.0.0.1"
#: How long a bounded wait for the daemon to act (a program to end, a member to be dropped) may take at most.
PATIENCE_SECONDS = 30.0


def ws(url: str, **kwargs: Any) -> ClientConnection:
    """A websockets sync client: no proxy, no keepalive pings, bounded waits."""
    options: dict[str, Any] = {"proxy": None, "open_timeout": TIMEOUT, "close_timeout": TIMEOUT, "ping_interval": None}
    return connect(url, **(options | kwargs))


def closed_with(connection: ClientConnection) -> tuple[int, str]:
    """Read until the daemon closes the connection; its close code and reason."""
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            connection.recv(TIMEOUT)
    assert closed.value.rcvd is not None, "the daemon sent no close frame"
    return closed.value.rcvd.code, closed.value.rcvd.reason


def eventually(condition: Callable[[], bool], what: str) -> None:
    """Wait until ``condition()`` holds (bounded by PATIENCE_SECONDS, a hang guard, not a speed check)."""
    deadline = time.monotonic() + PATIENCE_SECONDS
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting: {what}")
        time.sleep(0.05)


def refused_status(url: str) -> int | None:
    """The HTTP status of a refused upgrade to ``url``, or None if it was accepted (and then closed)."""
    try:
        with ws(url):
            return None
    except InvalidStatus as error:
        return error.response.status_code


# --- process ---------------------------------------------------------------------------------------------

ENV_SCRIPT = """
import os, sys
for name in ("REMOTE_ADDR", "SCRIPT_NAME", "PATH_INFO", "QUERY_STRING", "HTTP_X_TEST", "WEBSOCKET_SUBPROTOCOL"):
    print(name + "=" + os.environ.get(name, "(unset)"), flush=True)
for line in sys.stdin:
    line = line.rstrip("\\n")
    if line == "fail":
        print("failing on purpose", file=sys.stderr, flush=True)
        sys.exit(3)
    if line == "quit":
        break
    print(line.upper(), flush=True)
"""

STUBBORN_SCRIPT = """
import os, signal, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
print(os.getpid(), flush=True)
time.sleep(300)
"""


@pytest.fixture
def process_daemon(tmp_path: Path, daemon_factory: Any) -> Any:
    """A daemon with process endpoints: /script (Python), /cat (text, at most one), /bytes (binary), /stubborn."""
    scripts = {}
    for name, text in (("env.py", ENV_SCRIPT), ("stubborn.py", STUBBORN_SCRIPT)):
        scripts[name] = tmp_path / name
        scripts[name].write_text(textwrap.dedent(text))
    python = sys.executable
    return daemon_factory(
        f"""
[[endpoints]]
path = "/script"
handler = "process"
subprotocols = ["v1"]
[endpoints.options]
command = ["{python}", "-u", "{scripts["env.py"]}"]

[[endpoints]]
path = "/cat"
handler = "process"
[endpoints.options]
command = ["cat"]
max_processes = 1

[[endpoints]]
path = "/bytes"
handler = "process"
[endpoints.options]
command = ["cat"]
mode = "binary"

[[endpoints]]
path = "/stubborn"
handler = "process"
[endpoints.options]
command = ["{python}", "{scripts["stubborn.py"]}"]
kill_timeout_seconds = 0.5
"""
    )


def test_process_gets_the_request_as_cgi_variables_and_talks_in_lines(process_daemon):
    """A script sees REMOTE_ADDR, PATH_INFO, QUERY_STRING, HTTP_*, WEBSOCKET_SUBPROTOCOL; lines go both ways; exit 0 is 1000."""
    with ws(
        process_daemon.ws_url("/script/extra?q=1"), additional_headers={"X-Test": "yes"}, subprotocols=["v1"]
    ) as client:
        assert [client.recv(TIMEOUT) for _ in range(6)] == [
            "REMOTE_ADDR=127.0.0.1",
            "SCRIPT_NAME=/script",
            "PATH_INFO=/extra",
            "QUERY_STRING=q=1",
            "HTTP_X_TEST=yes",
            "WEBSOCKET_SUBPROTOCOL=v1",
        ]
        client.send("hello")
        client.send("wörld")
        assert [client.recv(TIMEOUT), client.recv(TIMEOUT)] == ["HELLO", "WÖRLD"]
        client.send("quit")
        assert closed_with(client)[0] == 1000


def test_process_failing_closes_with_1011_and_its_stderr_is_logged(process_daemon):
    """A program exiting with status 3 closes the connection with 1011; what it wrote to stderr is in the daemon's log."""
    with ws(process_daemon.ws_url("/script")) as client:
        for _ in range(6):
            client.recv(TIMEOUT)
        client.send("fail")
        code, reason = closed_with(client)
    assert (code, reason) == (1011, "program failed")
    eventually(lambda: "failing on purpose" in process_daemon.output(), "the script's stderr line in the log")


def test_cat_echoes_lines_and_the_cap_refuses_a_second_program_with_503(process_daemon):
    """cat echoes each message; with max_processes = 1 a second upgrade gets 503 until the first program has ended."""
    with ws(process_daemon.ws_url("/cat")) as client:
        for message in ["one", "two", "three"]:
            client.send(message)
            assert client.recv(TIMEOUT) == message
        assert refused_status(process_daemon.ws_url("/cat")) == 503
    # Closing the connection ended cat (stdin closed, SIGTERM): its slot comes back.
    eventually(lambda: refused_status(process_daemon.ws_url("/cat")) is None, "a new cat once the first one ended")


def test_binary_mode_relays_bytes_unchanged(process_daemon):
    """In binary mode stdout arrives as binary messages; all 256 byte values survive the round trip through cat."""
    payload = bytes(range(256)) * 4
    with ws(process_daemon.ws_url("/bytes")) as client:
        client.send(payload)
        received = b""
        while len(received) < len(payload):
            message = client.recv(TIMEOUT)
            assert isinstance(message, bytes)
            received += message
    assert received == payload


def program_gone(pid: int) -> bool:
    """Whether ``pid`` no longer runs (a zombie waiting for a parent that is not ours counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rpartition(")")[2].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_stopping_the_daemon_ends_the_programs_it_runs(process_daemon):
    """A program still running when the daemon stops, even one ignoring SIGTERM, does not outlive the daemon."""
    with ws(process_daemon.ws_url("/stubborn")) as client:
        pid = int(client.recv(TIMEOUT))
        assert process_daemon.stop() == 0
    eventually(lambda: program_gone(pid), f"program {pid} ended with the daemon")


def test_program_ignoring_sigterm_is_killed_after_the_timeout(process_daemon):
    """A program that ignores SIGTERM is SIGKILLed after kill_timeout_seconds and reaped once the peer left."""
    with ws(process_daemon.ws_url("/stubborn")) as client:
        pid = int(client.recv(TIMEOUT))
        assert not program_gone(pid)
    eventually(lambda: program_gone(pid), f"program {pid} killed")


# --- tcp -----------------------------------------------------------------------------------------------------


class EchoHandler(socketserver.BaseRequestHandler):
    """A TCP echo backend: sends back whatever it reads."""

    def handle(self) -> None:
        while data := self.request.recv(65536):
            self.request.sendall(data)


@pytest.fixture
def echo_backend() -> Iterator[int]:
    """A real TCP echo server on 127.0.0.1; yields its port."""
    server = socketserver.ThreadingTCPServer((LOOPBACK, 0), EchoHandler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def unused_port() -> int:
    """A port on 127.0.0.1 where nothing listens (bound, then released)."""
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def tcp_daemon(daemon_factory: Any, echo_backend: int) -> Any:
    """A daemon relaying /tcp to the echo backend and /down to a port nobody listens on."""
    return daemon_factory(
        f"""
[[endpoints]]
path = "/tcp"
handler = "tcp"
[endpoints.options]
host = "{LOOPBACK}"
port = {echo_backend}

[[endpoints]]
path = "/down"
handler = "tcp"
[endpoints.options]
host = "{LOOPBACK}"
port = {unused_port()}
"""
    )


def test_tcp_relays_bytes_both_ways_with_the_binary_subprotocol(tcp_daemon):
    """A noVNC-style client asking for "binary" gets it; its bytes reach the echo backend and come back as binary."""
    with ws(tcp_daemon.ws_url("/tcp"), subprotocols=["binary"]) as client:
        assert client.subprotocol == "binary"
        sent = bytes(range(256)) * 64
        client.send(sent)
        client.send("and text")
        received = b""
        while len(received) < len(sent) + len(b"and text"):
            message = client.recv(TIMEOUT)
            assert isinstance(message, bytes)
            received += message
    assert received == sent + b"and text"


def test_tcp_backend_down_closes_with_1011_and_a_reason(tcp_daemon):
    """When nothing listens at the backend's port the WebSocket is closed with 1011 "backend unavailable"."""
    with ws(tcp_daemon.ws_url("/down")) as client:
        assert closed_with(client) == (1011, "backend unavailable")


# --- broadcast ------------------------------------------------------------------------------------------------

MESSAGE_BYTES = 16 * 1024
BATCH = 25
#: Enough to fill the stalled member's kernel buffers (a few MiB on loopback) many times over; a bound, not a target.
MAX_BATCHES = 200
BROADCAST_CONFIG = """
[limits]
connection_burst_per_ip = 200  # 99 members connect at once from 127.0.0.1
[[endpoints]]
path = "/room"
handler = "broadcast"
[endpoints.options]
queue_max_messages = 50
queue_max_bytes = 65536
overflow = "close"
[endpoints.limits]
write_buffer_high_bytes = 16384
close_timeout_seconds = 120.0
"""


def stalled_member(port: int, path: str) -> socket.socket:
    """A member that completes the handshake and then never reads (a tiny receive buffer)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(TIMEOUT)
    sock.connect((LOOPBACK, port))
    sock.sendall(
        f"GET {path} HTTP/1.1\r\nHost: {LOOPBACK}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        head += sock.recv(1)
    assert head.startswith(b"HTTP/1.1 101 "), head
    return sock


def read_frames_until_close(sock: socket.socket) -> tuple[list[bytes], bytes]:
    """Drain a stalled member: the data messages, then the close payload (a plain RFC 6455 §5.2 parser)."""
    buffer, messages = b"", []
    while True:
        while len(buffer) >= 2:
            length, offset = buffer[1] & 0x7F, 2
            if length >= 126:
                size = 2 if length == 126 else 8
                if len(buffer) < 2 + size:
                    break
                length, offset = int.from_bytes(buffer[2 : 2 + size], "big"), 2 + size
            if len(buffer) < offset + length:
                break
            opcode, payload, buffer = buffer[0] & 0x0F, buffer[offset : offset + length], buffer[offset + length :]
            if opcode == 0x8:
                return messages, payload
            messages.append(payload)
        data = sock.recv(1 << 20)
        assert data, "the connection ended without a close frame"
        buffer += data


async def broadcast_to_99(daemon: Any, stalled: socket.socket) -> int:
    """99 reading members, one of them publishing, until the stalled member is dropped; returns how many were sent."""
    url = daemon.ws_url("/room")
    options: dict[str, Any] = {"proxy": None, "ping_interval": None, "compression": None, "open_timeout": TIMEOUT}
    members = [await async_connect(url, **options) for _ in range(99)]
    counts = [0] * len(members)
    disorder: list[str] = []

    async def read(index: int) -> None:
        async for message in members[index]:
            number = int(message[:8])
            if number != counts[index]:
                disorder.append(f"member {index} got {number} after {counts[index] - 1}")
                return
            counts[index] += 1

    readers = [asyncio.create_task(read(index)) for index in range(len(members))]
    sent, after_drop = 0, None
    padding = "." * (MESSAGE_BYTES - 8)
    for _ in range(MAX_BATCHES):
        for _ in range(BATCH):
            await members[0].send(f"{sent:08d}{padding}")
            sent += 1
        deadline = time.monotonic() + PATIENCE_SECONDS
        while min(counts) < sent and not disorder and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        assert not disorder, disorder[:3]
        assert min(counts) == sent, f"a reading member fell behind: {min(counts)} of {sent}"
        if after_drop is None and "not keeping up" in daemon.output():
            after_drop = 2  # go on a little: the others must not notice
        elif after_drop is not None:
            after_drop -= 1
            if after_drop == 0:
                break
    assert after_drop == 0, f"the stalled member was never dropped after {sent} messages\n{daemon.output()}"
    for member in members:
        await member.close()
    await asyncio.gather(*readers)
    assert counts == [sent] * len(members)
    return sent


def test_broadcast_drops_a_stalled_member_while_99_others_get_every_message_in_order(daemon_factory):
    """Of 100 members one stops reading: it alone is closed with 1008; the 99 others get every message, in order."""
    daemon = daemon_factory(BROADCAST_CONFIG)
    stalled = stalled_member(daemon.port, "/room")
    with contextlib.closing(stalled):
        sent = asyncio.run(broadcast_to_99(daemon, stalled))
        messages, close = read_frames_until_close(stalled)
        stalled.sendall(b"\x88\x82abcd" + bytes(a ^ b for a, b in zip(close[:2], b"abcd", strict=False)))
    numbers = [int(message[:8]) for message in messages]
    assert numbers == list(range(len(numbers))) and len(numbers) < sent
    assert int.from_bytes(close[:2], "big") == 1008
    eventually(lambda: "code=1008" in daemon.output(), "the stalled member's summary line")


def test_broadcast_to_compressing_and_plain_members_delivers_the_same_messages(daemon_factory):
    """Members with and without permessage-deflate get the same messages: shared frames fall back per member."""
    daemon = daemon_factory('[[endpoints]]\npath = "/room"\nhandler = "broadcast"\n')
    messages = [f"{n:04d} " + "compressible " * n for n in range(60)] + [bytes(range(256)) * 8]
    with (
        ws(daemon.ws_url("/room"), compression="deflate") as squeezed,
        ws(daemon.ws_url("/room"), compression=None) as plain,
    ):
        assert squeezed.response.headers.get("Sec-WebSocket-Extensions", "").startswith("permessage-deflate")
        for message in messages:
            plain.send(message)
        assert [squeezed.recv(TIMEOUT) for _ in messages] == messages
        assert [plain.recv(TIMEOUT) for _ in messages] == messages


# --- a handler that raises ---------------------------------------------------------------------------------------

SECRET = "db-password-hunter2"
FAULTY_PLUGIN = """
from wsdaemon.plugins import HandlerPlugin
faulty = HandlerPlugin(name="faulty", module="faulty_handler", description="echoes, and raises on 'boom'")
"""
FAULTY_MODULE = f"""
class Faulty:
    def negotiationStarted(self, transport):
        self.transport = transport
    def negotiationFinished(self):
        pass
    def textMessageReceived(self, message):
        if message == "boom":
            raise RuntimeError("{SECRET}")
        self.transport.sendTextMessage(message)
    def bytesMessageReceived(self, data):
        pass
    def pongReceived(self, payload):
        pass
    def connectionLost(self, reason):
        pass

class Factory:
    def buildProtocol(self, request):
        return Faulty()

def build_factory(options, endpoint):
    return Factory()
"""


@contextlib.contextmanager
def daemon_with_plugins(workdir: Path, plugins: Path, config: str) -> Iterator[tuple[int, Callable[[], str]]]:
    """A daemon that also finds plugins under ``plugins`` (on PYTHONPATH); its log may hold tracebacks."""
    config_path = workdir / "faulty.toml"
    config_path.write_text(config)
    port, log_path = unused_port(), workdir / "faulty.log"
    env = dict(
        os.environ,
        PYTHONUNBUFFERED="1",
        PYTHONPATH=os.pathsep.join(filter(None, [str(plugins), os.environ.get("PYTHONPATH")])),
    )
    command = [
        sys.executable,
        "-m",
        "twisted",
        "--log-format=text",
        "wsdaemon",
        "--listen",
        f"tcp:{port}:interface={LOOPBACK}",
        "--config",
        str(config_path),
    ]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command,
            cwd=Path(__file__).resolve().parents[2],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:

        def healthy() -> bool:
            assert process.poll() is None, log_path.read_text()
            try:
                with socket.create_connection((LOOPBACK, port), timeout=1):
                    return True
            except OSError:
                return False

        eventually(healthy, "the daemon listening")
        yield port, lambda: log_path.read_text(errors="replace")
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_handler_that_raises_closes_only_its_connection_with_1011(tmp_path):
    """A handler exception closes that connection with 1011 and no details; others stay open; the traceback is logged."""
    plugins = tmp_path / "site"
    (plugins / "twisted" / "plugins").mkdir(parents=True)
    (plugins / "twisted" / "plugins" / "faulty_plugin.py").write_text(FAULTY_PLUGIN)
    (plugins / "faulty_handler.py").write_text(FAULTY_MODULE)
    with daemon_with_plugins(tmp_path, plugins, '[[endpoints]]\npath = "/faulty"\nhandler = "faulty"\n') as (port, log):
        url = f"ws://{LOOPBACK}:{port}/faulty"
        with ws(url) as bystander, ws(url) as victim:
            victim.send("boom")
            code, reason = closed_with(victim)
            bystander.send("still here")
            assert bystander.recv(TIMEOUT) == "still here"
        assert code == 1011 and SECRET not in reason
        eventually(
            lambda: "Traceback (most recent call last)" in log() and SECRET in log(),
            "the handler's traceback in the log",
        )
