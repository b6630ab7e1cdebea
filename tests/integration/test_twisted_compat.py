"""A handler written for Twisted's own ``twisted.web.websocket`` runs unchanged on wsdaemon.

The handler module below imports nothing but ``twisted.web.websocket`` (for its
types). One subprocess serves it twice on 127.0.0.1: behind Twisted's
``WebSocketResource`` and behind wsdaemon's ``build_factory`` stack. The same
client (the ``websockets`` sync client) runs the same scenario against both,
and must observe the same thing (DESIGN §2.2 seam 4).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 5.0

#: The handler, exactly as a Twisted user would write it against twisted.web.websocket.
HANDLER_MODULE = '''
"""A handler for twisted.web.websocket; wsdaemon must run it unchanged."""

from twisted.python.failure import Failure
from twisted.web.server import Request
from twisted.web.websocket import WebSocketProtocol, WebSocketServerFactory, WebSocketTransport


class CompatHandler:
    """Echoes; "ping me" makes it ping the client; "close N" makes it close with code N."""

    transport: WebSocketTransport

    def negotiationStarted(self, transport: WebSocketTransport) -> None:
        self.transport = transport

    def negotiationFinished(self) -> None:
        pass

    def textMessageReceived(self, message: str) -> None:
        if message == "ping me":
            self.transport.ping(b"from-server")
        elif message.startswith("close "):
            self.transport.loseConnection(int(message.split()[1]))
        else:
            self.transport.sendTextMessage(message)

    def bytesMessageReceived(self, data: bytes) -> None:
        self.transport.sendBytesMessage(bytes(data))

    def pongReceived(self, payload: bytes) -> None:
        self.transport.sendTextMessage("pong:" + bytes(payload).decode())

    def connectionLost(self, reason: Failure) -> None:
        pass


class CompatFactory:
    def buildProtocol(self, request: Request) -> CompatHandler:
        return CompatHandler()


# Both stacks must accept these as their own protocol types.
_handler: WebSocketProtocol = CompatHandler()
_factory: WebSocketServerFactory[CompatHandler] = CompatFactory()
'''

#: Serves CompatFactory on Twisted's stack and on wsdaemon's; prints both ports; stops at stdin EOF.
SERVER_SCRIPT = """
import json
import sys
import threading

from twisted.internet import reactor
from twisted.web.resource import Resource
from twisted.web.server import Site
from twisted.web.websocket import WebSocketResource

from compat_handler import CompatFactory
from wsdaemon.config import parse_config
from wsdaemon.web.site import build_factory

root = Resource()
root.putChild(b"ws", WebSocketResource(CompatFactory()))
twisted_port = reactor.listenTCP(0, Site(root), interface="127.0.0.1")

config = parse_config('[[endpoints]]\\npath = "/ws"\\nhandler = "echo"\\n', "compat.toml")
wsdaemon_port = reactor.listenTCP(0, build_factory(config, {"/ws": CompatFactory()}, reactor), interface="127.0.0.1")


def stop_at_eof():
    sys.stdin.read()
    reactor.callFromThread(reactor.stop)


threading.Thread(target=stop_at_eof, daemon=True).start()
print(json.dumps({"twisted": twisted_port.getHost().port, "wsdaemon": wsdaemon_port.getHost().port}), flush=True)
reactor.run()
"""


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, int]]:
    """Both servers in one subprocess: {"twisted": port, "wsdaemon": port}."""
    workdir = tmp_path_factory.mktemp("compat")
    (workdir / "compat_handler.py").write_text(HANDLER_MODULE)
    (workdir / "serve.py").write_text(SERVER_SCRIPT)
    env_path = f"{workdir}:{REPO_ROOT}"
    process = subprocess.Popen(
        [sys.executable, str(workdir / "serve.py")],
        cwd=workdir,
        env={**os.environ, "PYTHONPATH": env_path, "PYTHONUNBUFFERED": "1"},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = process.stdout.readline()
        if not line:
            pytest.fail(f"compat server did not start:\n{process.stderr.read()}", pytrace=False)
        yield json.loads(line)
    finally:
        process.stdin.close()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    stderr = process.stderr.read()
    assert "Traceback" not in stderr, stderr


def ws(port: int) -> ClientConnection:
    """The same websockets client for both servers: no proxy, no keepalive pings, bounded waits."""
    return connect(
        f"ws://127.0.0.1:{port}/ws", proxy=None, open_timeout=TIMEOUT, close_timeout=TIMEOUT, ping_interval=None
    )


def on_both(servers: dict[str, int], scenario: Callable[[int], Any]) -> Any:
    """Run ``scenario`` against both stacks; they must observe the same thing, which is returned."""
    seen = {name: scenario(port) for name, port in servers.items()}
    assert seen["wsdaemon"] == seen["twisted"], seen
    return seen["wsdaemon"]


def test_text_and_bytes_echo_the_same_on_both(servers):
    """Text comes back as the same str, bytes as the same bytes, large ones included, on both stacks."""

    def scenario(port: int) -> list[Any]:
        with ws(port) as client:
            out = []
            for message in ("héllo ✓", b"\x00\x01\xff", "x" * 100_000, b"y" * 100_000):
                client.send(message)
                out.append(client.recv(TIMEOUT))
            return out

    assert on_both(servers, scenario) == ["héllo ✓", b"\x00\x01\xff", "x" * 100_000, b"y" * 100_000]


def test_client_ping_gets_a_pong_on_both(servers):
    """A client Ping is answered with a Pong by either stack, without the handler's help."""

    def scenario(port: int) -> bool:
        with ws(port) as client:
            return client.ping(b"client-ping").wait(TIMEOUT)

    assert on_both(servers, scenario) is True


def test_handler_ping_reaches_pong_received_on_both(servers):
    """transport.ping() from the handler comes back to its pongReceived with the payload, on both stacks."""

    def scenario(port: int) -> str:
        with ws(port) as client:
            client.send("ping me")
            return client.recv(TIMEOUT)

    assert on_both(servers, scenario) == "pong:from-server"


def test_client_close_code_is_echoed_the_same_on_both(servers):
    """A client closing with 1000 gets 1000 back from either stack."""

    def scenario(port: int) -> tuple[int | None, int | None]:
        with ws(port) as client:
            client.send("before close")
            client.recv(TIMEOUT)
            client.close(1000)
            received, sent = client.protocol.close_rcvd, client.protocol.close_sent
        return (received.code if received else None, sent.code if sent else None)

    assert on_both(servers, scenario) == (1000, 1000)


def test_handler_close_code_reaches_the_client_the_same_on_both(servers):
    """transport.loseConnection(4001) from the handler reaches the client as close code 4001 on both stacks."""

    def scenario(port: int) -> int | None:
        with ws(port) as client:
            client.send("close 4001")
            with pytest.raises(ConnectionClosed) as closed:
                client.recv(TIMEOUT)
            return closed.value.rcvd.code if closed.value.rcvd else None

    assert on_both(servers, scenario) == 4001
