"""The HTTP side of a listener: the resource tree, the pages it serves and its HTTP limits.

Driven through ``build_factory(config, factories, MemoryReactorClock())`` with
raw HTTP over a ``StringTransport``, plus one end-to-end exchange over
``twisted.test.iosim`` between a real client protocol and the server stack.
"""

from __future__ import annotations

import base64
import os
import re
from urllib.parse import urljoin

import pytest
from twisted.internet.address import IPv4Address
from twisted.internet.protocol import Protocol
from twisted.test import iosim

from tests.adapter.recording import RecordingFactory
from tests.helpers import Opcode, client_frame, close_payload, parse_frames
from tests.web.stack import Stack, http_request, parse_response, upgrade_request
from wsdaemon.config import ConfigError, parse_config
from wsdaemon.core import accept_key
from wsdaemon.interfaces import ConnectionRejected
from wsdaemon.web.resource import WebSocketResource
from wsdaemon.web.site import DaemonSite, build_root

TEXT, CLOSE = Opcode.TEXT, Opcode.CLOSE


def get(stack: Stack, path: str, **kwargs) -> object:
    """One plain request on a fresh connection."""
    return stack.connect().request(http_request(path, **kwargs))


# --- the pages ------------------------------------------------------------------------------


def test_root_serves_the_demo_page_with_a_deny_by_default_csp():
    """GET / returns the demo HTML with a CSP that denies by default and loads scripts only from the site."""
    response = get(Stack(), "/")
    assert response.status == 200
    assert response.header("content-type") == "text/html; charset=utf-8"
    assert b"<html" in response.body.lower()
    csp = response.header("content-security-policy")
    assert csp is not None
    directives = {name: sources for name, *sources in (part.split() for part in csp.split(";") if part.strip())}
    assert directives["default-src"] == ["'none'"]
    assert directives["script-src"] == ["'self'"]
    assert response.header("x-content-type-options") == "nosniff"


def test_demo_script_is_served_as_javascript():
    """GET /static/demo.js returns the demo script with a JavaScript content type."""
    response = get(Stack(), "/static/demo.js")
    assert response.status == 200
    assert response.header("content-type").startswith("text/javascript")
    assert response.body


def test_demo_page_loads_only_scripts_the_site_serves():
    """Every script the demo page references is served by the site, and none is inline (CSP script-src 'self')."""
    stack = Stack()
    page = get(stack, "/").body.decode()
    sources = re.findall(r'<script[^>]*\ssrc="([^"]+)"', page)
    assert sources
    for source in sources:
        assert get(stack, urljoin("/", source)).status == 200, source
    assert not re.search(r"<script(?![^>]*\ssrc=)[^>]*>\s*\S", page), "inline script"


def test_demo_page_can_be_turned_off():
    """With [http] demo_page = false, / and /static/demo.js are 404 while /healthz still answers."""
    stack = Stack("[http]\ndemo_page = false\n")
    assert get(stack, "/").status == 404
    assert get(stack, "/static/demo.js").status == 404
    assert get(stack, "/healthz").status == 200


def test_healthz_answers_ok():
    """GET /healthz answers 200 "ok" as uncacheable plain text."""
    response = get(Stack(), "/healthz")
    assert response.status == 200
    assert response.body.strip() == b"ok"
    assert response.header("content-type").startswith("text/plain")
    assert response.header("cache-control") == "no-store"


def test_head_healthz_has_no_body():
    """HEAD /healthz answers 200 without a body."""
    stack = Stack()
    peer = stack.connect()
    peer.send(http_request("/healthz", method="HEAD"))
    head, _, body = peer.take().partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    assert body == b""


@pytest.mark.parametrize("path", ["/", "/healthz", "/static/demo.js", "/echo", "/nope", "/static/demo.js/x"])
def test_head_is_answered_quietly_with_the_get_headers(path):
    """HEAD on any page (a WebSocket endpoint's 426 too) gets GET's status and length, no body, and no log line."""
    from twisted.logger import capturedLogs

    stack = Stack()
    got = get(stack, path)
    with capturedLogs() as events:
        peer = stack.connect()
        peer.send(http_request(path, method="HEAD"))
        written = peer.take()
    response = parse_response(written)
    assert written.endswith(b"\r\n\r\n") and response.body == b""
    assert response.status == got.status
    if got.header("content-length") is not None:
        assert response.header("content-length") == str(len(got.body))
    assert [event.get("log_format") for event in events if "message body" in str(event.get("log_format"))] == []


def test_head_of_a_static_file_is_quiet(tmp_path):
    """HEAD of a file and of a missing file under a [[static]] mount logs nothing either."""
    from twisted.logger import capturedLogs

    (tmp_path / "a.txt").write_text("abc")
    stack = Stack(f'[[static]]\npath = "/files"\ndirectory = "{tmp_path}"\n')
    with capturedLogs() as events:
        assert stack.connect().request(http_request("/files/a.txt", method="HEAD")).header("content-length") == "3"
        assert stack.connect().request(http_request("/files/nope", method="HEAD")).status == 404
    assert [event for event in events if "message body" in str(event.get("log_format"))] == []


@pytest.mark.parametrize("path", ["/nope", "/static", "/static/nope.js", "/echo2", "/Echo"])
def test_unknown_paths_are_404(path):
    """Anything not configured is 404."""
    assert get(Stack(), path).status == 404


@pytest.mark.parametrize("path", ["/", "/healthz", "/static/demo.js", "/nope", "/echo"])
def test_no_response_carries_a_server_banner(path):
    """No response, whatever its status, carries a Server header revealing the product and version."""
    assert get(Stack(), path).header("server") is None


# --- the endpoint tree ----------------------------------------------------------------------


NESTED = """
[[endpoints]]
path = "/a/b"
handler = "echo"
"""


def test_nested_endpoint_path_upgrades():
    """An endpoint at /a/b accepts upgrades there."""
    stack = Stack(NESTED)
    assert stack.connect().request(upgrade_request("/a/b")).status == 101
    assert len(stack.factories["/a/b"].handlers) == 1


def test_parent_of_a_nested_endpoint_is_404():
    """With only /a/b configured, /a and /a/c are 404, for plain GETs and upgrades alike."""
    stack = Stack(NESTED)
    assert get(stack, "/a").status == 404
    assert get(stack, "/a/c").status == 404
    assert stack.connect().request(upgrade_request("/a")).status == 404


def test_configured_endpoints_replace_the_default_echo():
    """A config with its own [[endpoints]] no longer serves /echo."""
    assert get(Stack(NESTED), "/echo").status == 404


def test_each_endpoint_uses_its_own_factory():
    """Two endpoints are served by their own handler factories: each upgrade reaches its path's factory only."""
    stack = Stack(NESTED + '[[endpoints]]\npath = "/c"\nhandler = "echo"\n')
    stack.upgraded("/c")
    assert (len(stack.factories["/a/b"].handlers), len(stack.factories["/c"].handlers)) == (0, 1)
    stack.upgraded("/a/b")
    stack.upgraded("/a/b")
    assert (len(stack.factories["/a/b"].handlers), len(stack.factories["/c"].handlers)) == (2, 1)


def test_nested_or_reserved_endpoint_paths_are_config_errors():
    """Endpoints at /a and /a/b, or under /healthz or /static, are config errors, not hidden pages."""
    for text in (
        '[[endpoints]]\npath = "/a"\nhandler = "echo"\n' + NESTED,
        '[[endpoints]]\npath = "/healthz/ws"\nhandler = "echo"\n',
        '[[endpoints]]\npath = "/static/ws"\nhandler = "echo"\n',
    ):
        with pytest.raises(ConfigError):
            parse_config(text, "test.toml")


def test_build_root_puts_one_resource_per_endpoint():
    """build_root mounts one WebSocketResource per configured endpoint, at its path, with that endpoint's factory."""
    stack = Stack(NESTED + '[[endpoints]]\npath = "/c"\nhandler = "echo"\n')
    root = build_root(stack.config, stack.factories, stack.clock, admission=stack.factory.admission)
    mounted = {"/a/b": root.children[b"a"].children[b"b"], "/c": root.children[b"c"]}
    for path, resource in mounted.items():
        assert isinstance(resource, WebSocketResource), path
        assert (resource.path, resource.factory) == (path, stack.factories[path])
    assert list(root.children[b"a"].children) == [b"b"]
    assert b"healthz" in root.children


# --- HTTP limits ----------------------------------------------------------------------------


def test_http_max_headers_is_set_on_each_channel():
    """Every HTTP channel the site builds carries the configured header count and size limits."""
    stack = Stack("[limits]\nhttp_max_headers = 7\nhttp_max_header_bytes = 2048\n")
    site = DaemonSite(
        build_root(stack.config, stack.factories, stack.clock, admission=stack.factory.admission),
        stack.config,
        stack.clock,
    )
    channels = [site.buildProtocol(IPv4Address("TCP", f"192.0.2.{i}", 1)) for i in (1, 2, 3)]
    assert [(channel.maxHeaders, channel.totalHeadersSize, channel.MAX_LENGTH) for channel in channels] == [
        (7, 2048, 2048)
    ] * 3


def test_too_many_headers_is_400():
    """A request with more header lines than http_max_headers is refused with 400 and the connection closed."""
    stack = Stack("[limits]\nhttp_max_headers = 5\n")
    peer = stack.connect()
    extra = [(f"X-Extra-{i}", "1") for i in range(5)]  # plus Host: six header lines
    peer.send(http_request("/healthz", headers=extra))
    assert peer.take().startswith(b"HTTP/1.1 400 ")
    assert peer.transport.disconnecting


def test_headers_up_to_the_limit_are_accepted():
    """A request with exactly http_max_headers header lines is served."""
    stack = Stack("[limits]\nhttp_max_headers = 5\n")
    extra = [(f"X-Extra-{i}", "1") for i in range(4)]
    assert get(stack, "/healthz", headers=extra).status == 200


def test_too_large_header_line_is_431():
    """A header line longer than http_max_header_bytes is refused with 431 (tests/web/test_channel.py has the rest)."""
    stack = Stack("[limits]\nhttp_max_header_bytes = 1024\n")
    peer = stack.connect()
    peer.send(http_request("/healthz", headers=[("X-Big", "x" * 2000)]))
    assert peer.take().startswith(b"HTTP/1.1 431 ")


def test_upgrade_with_too_many_headers_is_refused():
    """The header limit applies to upgrade requests too: no 101, no handler."""
    stack = Stack("[limits]\nhttp_max_headers = 6\n")
    peer = stack.connect()
    peer.send(upgrade_request("/echo", headers=[("X-1", "1"), ("X-2", "2")]))
    assert peer.take().startswith(b"HTTP/1.1 400 ")
    assert stack.factories["/echo"].handlers == []


# --- end to end over iosim ------------------------------------------------------------------


class RawClient(Protocol):
    """A minimal WebSocket client: sends an upgrade, then whatever the test queues."""

    def __init__(self) -> None:
        self.key = base64.b64encode(os.urandom(16)).decode()
        self.received = b""
        self.lost = False

    def connectionMade(self) -> None:
        self.transport.write(upgrade_request("/echo", key=self.key))

    def dataReceived(self, data: bytes) -> None:
        self.received += data

    def connectionLost(self, reason: object = None) -> None:
        self.lost = True


def test_end_to_end_echo_and_close_over_iosim():
    """A client and the server stack connected in memory: upgrade, echo, close handshake, both sides closed."""
    stack = Stack()
    server = stack.factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 50000))
    client, _, pump = iosim.connectedServerAndClient(lambda: server, RawClient, clock=stack.clock)
    response = parse_response(client.received)
    assert response.status == 101
    assert response.header("sec-websocket-accept") == accept_key(client.key)
    client.received = b""

    client.transport.write(client_frame(TEXT, b"over iosim"))
    pump.flush()
    assert parse_frames(client.received, masked=False) == [(True, TEXT, b"over iosim")]
    client.received = b""

    client.transport.write(client_frame(CLOSE, close_payload(1000)))
    pump.flush()
    assert parse_frames(client.received, masked=False) == [(True, CLOSE, close_payload(1000))]
    assert client.lost
    handler = stack.factories["/echo"].handlers[0]
    assert handler.lost.value.code == 1000
    assert stack.factory.protocols == {}
    assert [call for call in stack.clock.getDelayedCalls() if call.active()] == []


def test_rejected_upgrade_over_iosim_keeps_the_connection_for_http():
    """A refused upgrade leaves a usable HTTP connection for the next request."""
    stack = Stack(factories={"/echo": RecordingFactory(reject=ConnectionRejected(403, "no"))})
    server = stack.factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 50001))
    client, _, pump = iosim.connectedServerAndClient(lambda: server, RawClient, clock=stack.clock)
    assert parse_response(client.received).status == 403
    client.received = b""
    client.transport.write(http_request("/healthz"))
    pump.flush()
    assert parse_response(client.received).status == 200


def test_paths_below_a_fixed_page_are_404():
    """/healthz/anything and /static/demo.js/x are not the page itself: 404, while /healthz/ still answers."""
    stack = Stack()
    assert get(stack, "/healthz/anything").status == 404
    assert get(stack, "/static/demo.js/x").status == 404
    assert get(stack, "/healthz/").status == 200
