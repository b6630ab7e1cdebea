"""WebSocket endpoints over the full listener stack: the opening handshake and what follows it.

Every test feeds raw HTTP into ``build_factory(config, factories, MemoryReactorClock())``
over a ``StringTransport`` and reads the raw answer, as a client would
(RFC 6455 §4.2, DESIGN §2.2 seam 3, §2.4 for the status codes).
"""

from __future__ import annotations

import base64
import hashlib

from twisted.internet.error import ConnectionLost
from twisted.logger import capturedLogs
from twisted.python.failure import Failure

from tests.adapter.recording import RecordingFactory
from tests.helpers import Opcode, close_payload, parse_frames
from tests.web.stack import PEER_IP, RFC_ACCEPT, Stack, http_request, parse_response, upgrade_request
from wsdaemon.interfaces import ConnectionRejected

TEXT, BINARY, CLOSE, PING, PONG = Opcode.TEXT, Opcode.BINARY, Opcode.CLOSE, Opcode.PING, Opcode.PONG

ENDPOINT = """
[[endpoints]]
path = "/chat"
handler = "echo"
{extra}
"""


def chat_stack(extra: str = "", limits: str = "") -> Stack:
    """A stack with one endpoint at /chat configured with ``extra`` keys and global ``limits``."""
    head = f"[limits]\n{limits}\n" if limits else ""
    return Stack(head + ENDPOINT.format(extra=extra))


# --- a successful upgrade ------------------------------------------------------------------


def test_valid_upgrade_gets_exactly_a_101_with_the_accept_key():
    """A valid upgrade is answered with a bare 101 carrying the RFC 6455 accept value and nothing else."""
    stack = Stack()
    peer = stack.connect()
    peer.send(upgrade_request("/echo"))
    written = peer.take()
    expected = (
        "HTTP/1.1 101 Switching Protocols\r\n"
        "Upgrade: websocket\r\n"
        "Connection: Upgrade\r\n"
        f"Sec-WebSocket-Accept: {RFC_ACCEPT}\r\n\r\n"
    ).encode()
    assert written == expected


def test_accept_key_is_computed_from_the_request_key():
    """Sec-WebSocket-Accept is base64(SHA-1(key + GUID)) of this request's own key (RFC 6455 §4.2.2)."""
    key = "AAAAAAAAAAAAAAAAAAAAAA=="
    response = Stack().connect().request(upgrade_request("/echo", key=key))
    expected = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest())
    assert expected.decode() != RFC_ACCEPT  # not the answer to the default key
    assert response.header("sec-websocket-accept") == expected.decode()


def test_101_has_no_server_banner():
    """The 101 reveals no server product or version (no Server header)."""
    response = Stack().connect().request(upgrade_request("/echo"))
    assert response.header("server") is None


def test_frames_echo_after_the_upgrade():
    """After the 101, text and binary frames to /echo come back unmasked and unchanged."""
    stack = Stack()
    peer = stack.upgraded("/echo")
    peer.send_frame(TEXT, "héllo".encode())
    peer.send_frame(BINARY, b"\x00\x01")
    assert peer.frames() == [(True, TEXT, "héllo".encode()), (True, BINARY, b"\x00\x01")]


def test_ping_after_the_upgrade_is_answered():
    """A Ping through the whole stack gets its Pong."""
    peer = Stack().upgraded("/echo")
    peer.send_frame(PING, b"p")
    assert peer.frames() == [(True, PONG, b"p")]


def test_first_frame_after_the_101_is_served():
    """A client that waits for the 101 before its first frame gets that frame served normally."""
    stack = Stack()
    peer = stack.connect()
    peer.request(upgrade_request("/echo"))
    peer.send_frame(TEXT, b"first")
    assert peer.frames() == [(True, TEXT, b"first")]


def test_close_handshake_through_the_stack():
    """A client Close is echoed, the server closes TCP, and the handler hears a clean 1000."""
    stack = Stack()
    peer = stack.upgraded("/echo")
    peer.send_frame(CLOSE, close_payload(1000))
    assert peer.frames() == [(True, CLOSE, close_payload(1000))]
    assert peer.transport.disconnecting
    peer.lose()
    handler = stack.factories["/echo"].handlers[0]
    assert handler.lost.value.code == 1000


def test_peer_vanishing_after_upgrade_is_reported_as_1006():
    """A client that drops TCP after the upgrade is reported to its handler with 1006."""
    stack = Stack()
    peer = stack.upgraded("/echo")
    peer.lose(Failure(ConnectionLost()))
    assert stack.factories["/echo"].handlers[0].lost.value.code == 1006


def test_handler_factory_receives_the_request():
    """The endpoint's factory gets the twisted.web request, so it can look at the path and headers."""
    stack = Stack()
    stack.connect().request(upgrade_request("/echo", headers=[("Authorization", "Bearer t0k3n")]))
    request = stack.factories["/echo"].requests[0]
    assert request.path == b"/echo"
    assert request.getHeader("authorization") == "Bearer t0k3n"


def test_handler_is_started_and_finished_once_per_upgrade():
    """Each upgrade builds one handler, which sees negotiationStarted then negotiationFinished."""
    stack = Stack()
    stack.upgraded("/echo")
    stack.upgraded("/echo")
    handlers = stack.factories["/echo"].handlers
    assert len(handlers) == 2
    for handler in handlers:
        assert [name for name, _ in handler.events] == ["negotiationStarted", "negotiationFinished"]


def test_upgrade_on_the_second_request_of_a_keep_alive_connection():
    """A connection that first fetched /healthz can upgrade on its next request and then echo."""
    stack = Stack()
    peer = stack.connect()
    assert peer.request(http_request("/healthz")).status == 200
    assert peer.request(upgrade_request("/echo")).status == 101
    peer.send_frame(TEXT, b"second")
    assert peer.frames() == [(True, TEXT, b"second")]


def test_browser_style_connection_header_is_accepted():
    """Connection: keep-alive, Upgrade (as Firefox sends it) and Upgrade: WebSocket in any case are accepted."""
    data = upgrade_request("/echo").replace(b"Connection: Upgrade", b"Connection: keep-alive, Upgrade")
    data = data.replace(b"Upgrade: websocket", b"Upgrade: WebSocket")
    assert Stack().connect().request(data).status == 101


def test_query_string_does_not_prevent_the_upgrade():
    """An upgrade to /echo?room=1 reaches the /echo endpoint, whose factory sees the query string."""
    stack = Stack()
    response = stack.connect().request(upgrade_request("/echo?room=1"))
    assert response.status == 101
    request = stack.factories["/echo"].requests[0]
    assert (request.path, request.args) == (b"/echo", {b"room": [b"1"]})


# --- refused handshakes --------------------------------------------------------------------


def test_plain_get_on_an_endpoint_is_426_with_upgrade_websocket():
    """A plain GET on a WebSocket endpoint gets 426 Upgrade Required naming websocket."""
    response = Stack().connect().request(http_request("/echo"))
    assert response.status == 426
    assert response.header("upgrade") == "websocket"
    assert response.header("content-type").startswith("text/plain")


def test_wrong_version_is_426_with_our_version():
    """Sec-WebSocket-Version other than 13 gets 426 and Sec-WebSocket-Version: 13 (RFC 6455 §4.4)."""
    response = Stack().connect().request(upgrade_request("/echo", version="8"))
    assert response.status == 426
    assert response.header("sec-websocket-version") == "13"


def test_bad_key_is_400_plain_text():
    """A Sec-WebSocket-Key that is not base64 of 16 bytes gets 400 with a plain-text reason."""
    response = Stack().connect().request(upgrade_request("/echo", key="not-a-key"))
    assert response.status == 400
    assert response.header("content-type").startswith("text/plain")
    assert b"Sec-WebSocket-Key" in response.body


def test_missing_connection_upgrade_is_400():
    """An Upgrade: websocket request without Connection: Upgrade is malformed (400)."""
    data = upgrade_request("/echo").replace(b"Connection: Upgrade\r\n", b"")
    assert Stack().connect().request(data).status == 400


def test_http_10_upgrade_is_400():
    """The handshake needs HTTP/1.1; an HTTP/1.0 upgrade is refused with 400."""
    data = upgrade_request("/echo").replace(b"HTTP/1.1", b"HTTP/1.0", 1)
    stack = Stack()
    peer = stack.connect()
    peer.send(data)
    assert peer.take().split(b"\r\n", 1)[0] == b"HTTP/1.0 400 Bad Request"


def test_refused_handshake_builds_no_handler_and_does_not_switch():
    """A refused upgrade never reaches the handler factory and the connection stays HTTP."""
    stack = Stack()
    peer = stack.connect()
    assert peer.request(upgrade_request("/echo", version="8")).status == 426
    assert stack.factories["/echo"].requests == []
    assert peer.protocol.upgraded is None
    assert peer.request(http_request("/healthz")).status == 200


def test_cross_origin_request_is_403():
    """A browser Origin different from the Host is refused with 403 by default (RFC 6455 §10.2)."""
    stack = Stack()
    response = stack.connect().request(upgrade_request("/echo", headers=[("Origin", "https://evil.example")]))
    assert response.status == 403
    assert stack.factories["/echo"].requests == []


def test_same_origin_request_is_accepted():
    """A browser page served from the same host and port may connect."""
    response = Stack().connect().request(upgrade_request("/echo", headers=[("Origin", "http://localhost:8080")]))
    assert response.status == 101


def test_request_without_origin_is_accepted():
    """A non-browser client (no Origin header) is not subject to the origin check."""
    assert Stack().connect().request(upgrade_request("/echo")).status == 101


def test_allowed_origins_lets_listed_origins_in():
    """An origin named in allowed_origins may connect from another host."""
    stack = chat_stack('allowed_origins = ["https://app.example"]')
    response = stack.connect().request(upgrade_request("/chat", headers=[("Origin", "https://app.example")]))
    assert response.status == 101


def test_allowed_origins_keeps_other_origins_out():
    """An origin not in allowed_origins gets 403, same-host pages included (the list replaces same-origin)."""
    stack = chat_stack('allowed_origins = ["https://app.example"]')
    for origin in ("https://other.example", "http://app.example", "http://localhost:8080"):
        response = stack.connect().request(upgrade_request("/chat", headers=[("Origin", origin)]))
        assert response.status == 403, origin


def test_allowed_origins_star_allows_any_origin():
    """allowed_origins = ["*"] lets any origin connect."""
    stack = chat_stack('allowed_origins = ["*"]')
    response = stack.connect().request(upgrade_request("/chat", headers=[("Origin", "https://anything.example")]))
    assert response.status == 101


def test_subprotocol_is_the_servers_first_choice_that_the_client_offered():
    """The 101 names the endpoint's most preferred subprotocol among those the client offered."""
    stack = chat_stack('subprotocols = ["chat.v2", "chat.v1"]')
    response = stack.connect().request(
        upgrade_request("/chat", headers=[("Sec-WebSocket-Protocol", "chat.v1, chat.v2")])
    )
    assert response.status == 101
    assert response.header("sec-websocket-protocol") == "chat.v2"


def test_no_common_subprotocol_means_no_protocol_header():
    """If the client offers nothing the endpoint supports, the 101 names no subprotocol."""
    stack = chat_stack('subprotocols = ["chat.v2"]')
    response = stack.connect().request(upgrade_request("/chat", headers=[("Sec-WebSocket-Protocol", "mqtt")]))
    assert response.status == 101
    assert response.header("sec-websocket-protocol") is None


def test_subprotocol_is_never_chosen_when_the_endpoint_has_none():
    """An endpoint without subprotocols ignores the client's offer: it still upgrades, naming no subprotocol."""
    response = Stack().connect().request(upgrade_request("/echo", headers=[("Sec-WebSocket-Protocol", "chat")]))
    assert response.status == 101
    assert response.header("sec-websocket-protocol") is None


def test_factory_rejection_answers_with_its_status_and_headers():
    """A factory raising ConnectionRejected(401, ...) gets that status, its headers and reason, and no 101."""
    rejection = ConnectionRejected(401, "login first", [("WWW-Authenticate", 'Bearer realm="chat"')])
    stack = Stack(factories={"/echo": RecordingFactory(reject=rejection)})
    peer = stack.connect()
    response = peer.request(upgrade_request("/echo"))
    assert response.status == 401
    assert response.header("www-authenticate") == 'Bearer realm="chat"'
    assert response.body == b"login first\n"
    assert response.header("sec-websocket-accept") is None
    assert peer.protocol.upgraded is None


def test_unexpected_factory_error_is_500_without_details():
    """A factory that crashes gets a 500 with no traceback or exception text on the wire."""
    stack = Stack(factories={"/echo": RecordingFactory(reject=RuntimeError("secret-internals"))})
    peer = stack.connect()
    peer.send(upgrade_request("/echo"))
    written = peer.take()
    assert written.startswith(b"HTTP/1.1 500 ")
    assert b"secret-internals" not in written and b"Traceback" not in written


def test_per_ip_limit_is_503_with_retry_after():
    """A peer already holding max_connections_per_ip connections gets 503 with Retry-After on upgrade."""
    stack = chat_stack(limits="max_connections_per_ip = 2")
    stack.upgraded("/chat")
    stack.upgraded("/chat")
    response = stack.connect().request(upgrade_request("/chat"))
    assert response.status == 503
    assert response.header("retry-after") is not None
    assert int(response.header("retry-after")) > 0
    assert len(stack.factories["/chat"].handlers) == 2


def test_per_ip_limit_does_not_affect_other_peers():
    """Another address still upgrades while one peer is at its per-IP limit."""
    stack = chat_stack(limits="max_connections_per_ip = 1")
    stack.upgraded("/chat")
    peer = stack.connect(host="198.51.100.1")
    assert peer.request(upgrade_request("/chat")).status == 101


def test_per_ip_slot_is_freed_when_a_connection_closes():
    """After one of a peer's connections closes, it may upgrade again."""
    stack = chat_stack(limits="max_connections_per_ip = 1")
    first = stack.upgraded("/chat")
    first.lose()
    assert stack.factory.admission.connections_from(PEER_IP) == 0
    assert stack.connect().request(upgrade_request("/chat")).status == 101


def test_post_to_an_endpoint_is_405():
    """Only GET can upgrade; POST to an endpoint is 405 Method Not Allowed."""
    response = Stack().connect().request(http_request("/echo", method="POST", body=b"x"))
    assert response.status == 405


def test_endpoint_limits_apply_to_its_connections():
    """An endpoint's own limits table bounds its connections (here: max_message_bytes -> 1009)."""
    stack = chat_stack("[endpoints.limits]\nmax_message_bytes = 10")
    peer = stack.upgraded("/chat")
    peer.send_frame(TEXT, b"x" * 11)
    frames = peer.frames()
    assert frames[-1][1] == CLOSE and frames[-1][2][:2] == close_payload(1009)


# --- broken handlers and factories ------------------------------------------------------------


class NoneFactory:
    """A factory that returns None, Twisted's usual way for a protocol factory to refuse a connection."""

    def buildProtocol(self, request: object) -> None:
        return None


class HandlerWithoutNegotiationFinished:
    """A handler missing one method of the WebSocketProtocol API."""

    def negotiationStarted(self, transport: object) -> None:
        self.transport = transport

    def textMessageReceived(self, message: str) -> None:
        pass

    def connectionLost(self, reason: object) -> None:
        pass


class FactoryOf:
    def __init__(self, handler_class: type) -> None:
        self.handler_class = handler_class

    def buildProtocol(self, request: object) -> object:
        return self.handler_class()


def test_factory_returning_none_refuses_the_upgrade_before_the_101():
    """A factory whose buildProtocol returns None gets an HTTP refusal, never a 101."""
    stack = Stack(factories={"/echo": NoneFactory()})
    peer = stack.connect()
    with capturedLogs():
        peer.send(upgrade_request("/echo"))
    written = peer.take()
    assert not written.startswith(b"HTTP/1.1 101 "), written
    assert parse_response(written).status >= 400


def test_broken_handler_gets_1011_and_no_http_after_the_101():
    """A handler lacking a method is closed with 1011; nothing but WebSocket frames follows the 101."""
    stack = Stack(factories={"/echo": FactoryOf(HandlerWithoutNegotiationFinished)})
    peer = stack.connect()
    with capturedLogs():
        peer.send(upgrade_request("/echo"))
    response = parse_response(peer.take())
    assert response.status == 101
    assert b"HTTP/1.1" not in response.rest, response.rest
    frames = parse_frames(response.rest, masked=False)
    assert [opcode for _, opcode, _ in frames] == [CLOSE]
    assert frames[0][2][:2] == close_payload(1011)
