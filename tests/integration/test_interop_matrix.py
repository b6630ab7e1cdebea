"""The interoperability matrix: independent clients run one mixed exchange with an echo endpoint.

Clients: ``websockets``, ``aiohttp``, Node's ``ws`` (from npm, pinned in
``tests/integration/node/package.json``; installed here with ``npm ci`` when missing) and
Chromium (Debian's ``/usr/bin/chromium`` through Playwright). Each is run over TCP and TLS,
against ``/deflate`` (permessage-deflate on) and ``/plain`` (off). The exchange: empty text and
binary, 125/126/65535/65536-byte and 1 MiB messages, multi-byte UTF-8, binary; then fragmented
messages and a ping where the client can send them (websockets, aiohttp's ping, Node; a
browser can do neither); then a close with 4000 "bye", which must come back as a clean close
with that code (RFC 6455 §5.5.1: the reason need not be echoed). The messages are made by the same rules in Python and in ``node/exchange.js``,
which Node and the browser share. One daemon serves the whole module.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import ssl
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.certs import ThrowawayCA
from tests.integration.support import LOOPBACK, free_port

NODE_DIR = Path(__file__).resolve().parent / "node"
CHROMIUM = Path("/usr/bin/chromium")
MIB = 1024 * 1024
TIMEOUT = 30.0
CLOSE_CODE, CLOSE_REASON = 4000, "bye"
MESSAGES = [
    {"kind": "text", "size": 0},
    {"kind": "binary", "size": 0},
    {"kind": "text", "size": 125},
    {"kind": "binary", "size": 126},
    {"kind": "text", "size": 65535},
    {"kind": "binary", "size": 65536},
    {"kind": "utf8", "size": 1000},
    {"kind": "binary", "size": 256},
    {"kind": "binary", "size": MIB},
    {"kind": "text", "size": MIB},
]
SPEC = {"messages": MESSAGES, "closeCode": CLOSE_CODE, "closeReason": CLOSE_REASON, "timeoutMs": int(TIMEOUT * 1000)}
FRAGMENTS = ["frag", "ment", "ed ✓"]


def make_message(item: dict) -> str | bytes:
    """A message of the exchange, by the rules of ``makeMessage`` in node/exchange.js."""
    size = item["size"]
    if item["kind"] == "binary":
        return bytes((i * 7 + 3) & 255 for i in range(size))
    if item["kind"] == "utf8":
        return "héllo wörld ✓ 🚀 " * size
    return ("abcdefghijklmnopqrstuvwxyz" * (size // 26 + 1))[:size]


# --- the daemon and its certificates -------------------------------------------------------------


class Served:
    """The module's daemon: a plain and a TLS listener, both with /deflate and /plain."""

    def __init__(self, daemon: Any, tls_port: int, ca: ThrowawayCA) -> None:
        self.daemon = daemon
        self.tls_port = tls_port
        self.ca = ca

    def url(self, transport: str, path: str) -> str:
        """The ws:// or wss:// URL of an endpoint."""
        if transport == "tls":
            return f"wss://{LOOPBACK}:{self.tls_port}{path}"
        return f"ws://{LOOPBACK}:{self.daemon.port}{path}"

    def page_url(self, transport: str) -> str:
        """A page of the same origin as the endpoints, for the browser."""
        if transport == "tls":
            return f"https://{LOOPBACK}:{self.tls_port}/healthz"
        return f"{self.daemon.base_url}/healthz"

    def ssl_context(self) -> ssl.SSLContext:
        """A client context that trusts the throwaway CA (and checks the host name)."""
        return ssl.create_default_context(cafile=str(self.ca.path))


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """One daemon for the module: TCP and TLS listeners, an echo endpoint with and one without deflate."""
    from tests.integration.conftest import running_daemon

    workdir = tmp_path_factory.mktemp("matrix")
    ca = ThrowawayCA(workdir / "pki")
    cert = ca.issue("localhost", ("localhost",), ip_addresses=(LOOPBACK,), stem="server")
    http_port, tls_port = free_port(), free_port()
    config = (
        f'[[listeners]]\nendpoint = "tcp:{http_port}:interface={LOOPBACK}"\n'
        f'[[listeners]]\nendpoint = "tcp:{tls_port}:interface={LOOPBACK}"\ntls = true\n'
        f'certificate = "{cert.cert_path}"\nprivate_key = "{cert.key_path}"\n'
        '[[endpoints]]\npath = "/deflate"\nhandler = "echo"\n'
        '[[endpoints]]\npath = "/plain"\nhandler = "echo"\n[endpoints.deflate]\nenabled = false\n'
    )
    with running_daemon(workdir, config, port=http_port, listen=False) as daemon:
        yield Served(daemon, tls_port, ca)


# --- the clients: each returns the report of node/exchange.js -----------------------------------


def new_report(extensions: str | None) -> dict:
    return {"extensions": extensions or "", "mismatches": [], "echoed": 0, "extra": None}


def check_echo(report: dict, index: int, sent: str | bytes, got: object) -> None:
    if type(got) is type(sent) and got == sent:
        report["echoed"] += 1
    else:
        item = MESSAGES[index]
        report["mismatches"].append({"index": index, "kind": item["kind"], "size": item["size"]})


def run_websockets(served: Served, url: str) -> dict:
    """The ``websockets`` sync client (it offers permessage-deflate by default)."""
    from websockets.sync.client import connect

    tls = served.ssl_context() if url.startswith("wss:") else None
    options: dict[str, Any] = {"proxy": None, "ping_interval": None, "max_size": 2 * MIB, "ssl": tls}
    with connect(url, open_timeout=TIMEOUT, close_timeout=TIMEOUT, **options) as ws:
        assert ws.response is not None
        report = new_report(ws.response.headers.get("Sec-WebSocket-Extensions"))
        for index, item in enumerate(MESSAGES):
            message = make_message(item)
            ws.send(message)
            check_echo(report, index, message, ws.recv(TIMEOUT))
        ws.send(FRAGMENTS)
        fragmented = ws.recv(TIMEOUT) == "".join(FRAGMENTS)
        pong = ws.ping(b"are you there").wait(TIMEOUT)
        report["extra"] = {"fragmented": fragmented, "pong": pong}
        ws.close(CLOSE_CODE, CLOSE_REASON)
        clean = ws.protocol.close_rcvd is not None and ws.protocol.close_sent is not None
        report["close"] = {"code": ws.close_code, "wasClean": clean}
    return report


async def aiohttp_exchange(served: Served, url: str) -> dict:
    """The ``aiohttp`` client: deflate offered (compress=15), pongs shown (autoping off)."""
    import aiohttp

    tls = served.ssl_context() if url.startswith("wss:") else False
    timeout = aiohttp.ClientWSTimeout(ws_receive=TIMEOUT, ws_close=TIMEOUT)
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(url, ssl=tls, compress=15, autoping=False, max_msg_size=2 * MIB, timeout=timeout) as ws,
    ):
        report = new_report("permessage-deflate" if ws.compress else "")
        for index, item in enumerate(MESSAGES):
            message = make_message(item)
            await (ws.send_str(message) if isinstance(message, str) else ws.send_bytes(message))
            check_echo(report, index, message, (await ws.receive()).data)
        await ws.ping(b"are you there")
        answer = await ws.receive()
        report["extra"] = {"pong": answer.type == aiohttp.WSMsgType.PONG and answer.data == b"are you there"}
        await ws.close(code=CLOSE_CODE, message=CLOSE_REASON.encode())
        # aiohttp reports the code of the server's close frame only once that frame arrived.
        report["close"] = {"code": ws.close_code, "wasClean": ws.closed}
    return report


def run_aiohttp(served: Served, url: str) -> dict:
    """Run the aiohttp exchange on its own event loop."""
    return asyncio.run(asyncio.wait_for(aiohttp_exchange(served, url), TIMEOUT))


@pytest.fixture(scope="module")
def node_ws() -> Path:
    """Node with the pinned ``ws`` installed (``npm ci`` in tests/integration/node when missing)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.fail("node and npm are needed (Debian: apt-get install nodejs npm)")
    if not (NODE_DIR / "node_modules" / "ws" / "package.json").exists():
        done = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"], cwd=NODE_DIR, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, f"npm ci failed in {NODE_DIR}\n{done.stdout}{done.stderr}"
    return Path(node)


def run_node(node: Path, served: Served, url: str) -> dict:
    """Node's ``ws`` client running node/interop.js (fragments and a ping included)."""
    command = [str(node), "interop.js", url, json.dumps(SPEC)]
    if url.startswith("wss:"):
        command.append(str(served.ca.path))
    done = subprocess.run(command, cwd=NODE_DIR, capture_output=True, text=True, timeout=TIMEOUT * 2)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """Headless Debian Chromium for the module (the flags of the demo page test)."""
    from playwright.sync_api import sync_playwright

    from tests.integration.test_browser import CHROMIUM_FLAGS

    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium package (apt-get install chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


def run_chromium(browser: Any, served: Served, url: str, transport: str) -> dict:
    """The browser's own WebSocket, from a page of the daemon's origin (the throwaway CA is not installed)."""
    context = browser.new_context(ignore_https_errors=True, bypass_csp=True)
    try:
        page = context.new_page()
        page.route("**/favicon.ico", lambda route: route.fulfill(status=204))  # /healthz has no icon
        errors: list[str] = []
        page.on("console", lambda m: m.type == "error" and errors.append(m.text))
        page.goto(served.page_url(transport))
        page.add_script_tag(content=(NODE_DIR / "exchange.js").read_text())
        report = page.evaluate("([url, spec]) => exchange(() => new WebSocket(url), spec, null)", [url, SPEC])
        assert errors == [], errors
        return report
    finally:
        context.close()


# --- the matrix ------------------------------------------------------------------------------------

CLIENTS = ["websockets", "aiohttp", "node-ws", "chromium"]
#: What each client can send beyond plain messages, and so must have done.
EXTRAS = {
    "websockets": {"fragmented": True, "pong": True},
    "aiohttp": {"pong": True},
    "node-ws": {"fragmented": True, "pong": True, "fragmentedBinary": True},
    "chromium": None,
}


@pytest.fixture
def exchange(request: pytest.FixtureRequest, served: Served) -> Callable[[str, str, str], dict]:
    """Run one client's exchange: (client, transport, path) -> report."""

    def run(client: str, transport: str, path: str) -> dict:
        url = served.url(transport, path)
        if client == "websockets":
            return run_websockets(served, url)
        if client == "aiohttp":
            return run_aiohttp(served, url)
        if client == "node-ws":
            return run_node(request.getfixturevalue("node_ws"), served, url)
        return run_chromium(request.getfixturevalue("chromium"), served, url, transport)

    return run


@pytest.mark.parametrize("path", ["/deflate", "/plain"], ids=["deflate", "no-deflate"])
@pytest.mark.parametrize("transport", ["tcp", "tls"])
@pytest.mark.parametrize("client", CLIENTS)
def test_client_exchanges_everything_and_closes_cleanly(exchange, client, transport, path):
    """Every message comes back identical, fragments and pings work, and the 4000 close is echoed cleanly."""
    report = exchange(client, transport, path)
    assert report["mismatches"] == [], report["mismatches"]
    assert report["echoed"] == len(MESSAGES)
    assert ("permessage-deflate" in report["extensions"]) is (path == "/deflate"), report["extensions"]
    assert report["extra"] == EXTRAS[client]
    close = report["close"]
    assert (close["code"], close["wasClean"]) == (CLOSE_CODE, True), close
