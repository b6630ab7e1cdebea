"""The publish and presence API (wsdaemon.web.api) through the whole listener stack in memory."""

from __future__ import annotations

import json

import pytest
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, fail
from twisted.internet.testing import MemoryReactorClock, StringTransport

from tests.web.stack import Peer, Response, http_request, make_config
from wsdaemon.broker import InProcessBroker, LinkState, PublishRefused
from wsdaemon.core.frames import Opcode
from wsdaemon.web.api import ApiAccess
from wsdaemon.web.site import build_factory

TOKEN = b"s3cret-token-for-tests"
AUTH = ("Authorization", "Bearer " + TOKEN.decode())
CONFIG = '[api]\ntoken_file = "/dev/null"\n[limits]\nmax_message_bytes = 1000\n'


class Member:
    def __init__(self):
        self.got = []

    def deliver(self, message):
        self.got.append(message.payload.decode() if message.opcode == Opcode.TEXT else message.payload)


class Api:
    """The daemon's stack with [api] on, on an in-process broker with one member of /chat/room1."""

    def __init__(self, broker=None, config: str = CONFIG, allowed=lambda request: True) -> None:
        self.broker = broker or InProcessBroker()
        self.member = Member()
        self.broker.subscribe("/chat/room1", self.member)
        self.config = make_config(config)
        access = ApiAccess(TOKEN, self.config.limits.max_message_bytes, allowed)
        self.factory = build_factory(
            self.config, {"/echo": object(), "/chat": object()}, MemoryReactorClock(), broker=self.broker, api=access
        )

    def request(self, method: str, path: str, body: bytes = b"", headers=(AUTH,)) -> Response:
        address = IPv4Address("TCP", "127.0.0.1", 40000)
        protocol = self.factory.buildProtocol(address)
        protocol.makeConnection(StringTransport(hostAddress=IPv4Address("TCP", "127.0.0.1", 8080), peerAddress=address))
        peer = Peer(protocol, protocol.transport)
        return peer.request(http_request(path, method=method, headers=headers, body=body))

    def publish(self, document, headers=(AUTH,)) -> Response:
        body = document if isinstance(document, bytes) else json.dumps(document).encode()
        return self.request("POST", "/api/publish", body, headers)


def error_of(response: Response) -> str:
    assert response.header("content-type") == "application/json"
    return json.loads(response.body)["error"]


def test_text_publish_reaches_members_and_says_what_was_published():
    """POST {"channel", "data"} with the token: 200 JSON naming the channel, size and route; members get the text."""
    api = Api()
    response = api.publish({"channel": "/chat/room1", "data": "héllo"})
    assert response.status == 200
    assert json.loads(response.body) == {"channel": "/chat/room1", "bytes": 6, "binary": False, "route": "local"}
    assert api.member.got == ["héllo"]


def test_b64_publish_is_a_binary_message():
    """POST {"channel", "b64"}: members get a binary message of exactly the decoded bytes."""
    api = Api()
    response = api.publish({"channel": "/chat/room1", "b64": "AAEC/w=="})
    assert response.status == 200 and json.loads(response.body)["binary"] is True
    assert api.member.got == [b"\x00\x01\x02\xff"]


@pytest.mark.parametrize(
    "headers",
    [(), (("Authorization", "Bearer wrong-token-of-the-same-size"),), (("Authorization", "Basic " + TOKEN.decode()),)],
    ids=["missing", "wrong", "not-bearer"],
)
def test_without_the_right_token_the_answer_is_401(headers):
    """No token, a wrong token or another scheme: 401 JSON with WWW-Authenticate: Bearer, nothing published."""
    api = Api()
    response = api.publish({"channel": "/chat/room1", "data": "x"}, headers=headers)
    assert response.status == 401 and response.header("www-authenticate") == "Bearer"
    assert "Bearer" in error_of(response) and api.member.got == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"{not json", "body:"),
        (b"\xff\xfe", "body:"),
        (b"[1, 2]", "body:"),
        (b'"text"', "body:"),
        (b"[" * 30000 + b"]" * 30000, "body:"),
        ({"data": "x"}, "channel: missing"),
        ({"channel": 5, "data": "x"}, "channel: must be a string"),
        ({"channel": "chat", "data": "x"}, "channel: must be a URL path"),
        ({"channel": "/chat//x", "data": "x"}, "channel: must not contain an empty"),
        ({"channel": "/chat/x?y", "data": "x"}, "channel: must not contain '?'"),
        ({"channel": "/" + "a" * 600, "data": "x"}, "channel: must be at most"),
        ({"channel": "/chat/room1"}, "data: give exactly one"),
        ({"channel": "/chat/room1", "data": "x", "b64": "eA=="}, "data: give exactly one"),
        ({"channel": "/chat/room1", "data": 1}, "data: must be a string, got a number"),
        ({"channel": "/chat/room1", "data": None}, "data: must be a string, got null"),
        ({"channel": "/chat/room1", "b64": ["x"]}, "b64: must be a string, got an array"),
        ({"channel": "/chat/room1", "b64": "not base64!"}, "b64: not valid base64"),
        ({"channel": "/chat/room1", "b64": "eA"}, "b64: not valid base64"),
        ({"channel": "/chat/room1", "data": "x", "extra": 1}, "extra: unknown field"),
        (b'{"channel": "/chat/room1", "data": "\\ud800"}', "data: must be valid Unicode"),
    ],
)
def test_every_bad_body_is_a_400_naming_the_field(body, field):
    """Bad JSON, a missing or invalid channel, a wrong data/b64 field: 400 with a JSON error naming the field."""
    api = Api()
    response = api.publish(body)
    assert response.status == 400
    assert error_of(response).startswith(field)
    assert api.member.got == []


def test_a_message_over_max_message_bytes_is_413():
    """A message over [limits] max_message_bytes (here 1000) is refused with 413; exactly the limit passes."""
    api = Api()
    assert api.publish({"channel": "/chat/room1", "data": "x" * 1000}).status == 200
    response = api.publish({"channel": "/chat/room1", "data": "x" * 1001})
    assert response.status == 413 and "max_message_bytes" in error_of(response)


def test_a_body_declared_too_large_is_413_before_it_is_parsed():
    """A Content-Length far over the limit is answered 413 from the header."""
    api = Api()
    response = api.publish(b" " * 200_000 + b"{}")
    assert response.status == 413


def test_other_methods_get_a_json_405_with_allow():
    """GET /api/publish is 405 JSON with Allow: POST; POST /api/presence is 405 with Allow: GET."""
    api = Api()
    response = api.request("GET", "/api/publish")
    assert (response.status, response.header("allow")) == (405, "POST") and error_of(response)
    response = api.request("POST", "/api/presence?channel=/chat/room1")
    assert (response.status, response.header("allow")) == (405, "GET")


def test_below_the_api_paths_is_a_json_404():
    """/api/publish/x is not the API: 404 in JSON."""
    assert Api().request("POST", "/api/publish/x", b"{}").status == 404


def test_presence_counts_members():
    """GET /api/presence?channel=/chat/room1 answers the member count as JSON."""
    api = Api()
    api.broker.subscribe("/chat/room1", Member())
    response = api.request("GET", "/api/presence?channel=/chat/room1")
    assert response.status == 200
    assert json.loads(response.body) == {"channel": "/chat/room1", "members": 2, "complete": True}


@pytest.mark.parametrize(
    ("query", "problem"),
    [
        ("", "channel: give exactly one"),
        ("?channel=a&channel=b", "channel: give exactly one"),
        ("?channel=x", "channel: must be a URL path"),
        ("?channel=%ff", "channel: must be UTF-8"),
    ],
)
def test_bad_presence_queries_are_400(query, problem):
    """Presence without exactly one valid channel parameter: 400 naming channel."""
    response = Api().request("GET", "/api/presence" + query)
    assert response.status == 400 and error_of(response).startswith(problem)


def test_presence_needs_the_token():
    """Presence without the token: 401."""
    assert Api().request("GET", "/api/presence?channel=/a", headers=()).status == 401


class RefusingBroker(InProcessBroker):
    state = LinkState.DOWN

    def publish(self, channel, message, exclude=None, local_fallback=True, history=None):
        return fail(PublishRefused("the broker is down and 5 messages already wait (max_pending_messages)"))


def test_a_refused_publish_is_503_with_the_reason():
    """Broker down with a full queue: 503 JSON saying so; nothing is delivered."""
    api = Api(RefusingBroker())
    response = api.publish({"channel": "/chat/room1", "data": "x"})
    assert response.status == 503 and "max_pending_messages" in error_of(response)


class BrokenBroker(InProcessBroker):
    def publish(self, channel, message, exclude=None, local_fallback=True, history=None):
        return fail(RuntimeError("secret internal detail"))


def test_an_unexpected_failure_is_a_500_without_details():
    """A bug behind the API answers 500 JSON that reveals nothing; the traceback goes to the log only."""
    from twisted.logger import capturedLogs

    with capturedLogs() as events:
        response = Api(BrokenBroker()).publish({"channel": "/chat/room1", "data": "x"})
    assert response.status == 500 and "secret" not in response.body.decode()
    assert any("log_failure" in event for event in events)


def test_the_api_answers_404_on_listeners_it_is_not_served_on():
    """With [api] listeners naming other listeners, requests here get 404 and publish nothing."""
    api = Api(allowed=lambda request: False)
    response = api.publish({"channel": "/chat/room1", "data": "x"})
    assert response.status == 404 and api.member.got == []


def test_without_api_config_there_are_no_api_paths():
    """Without [api], /api/publish does not exist (404)."""
    config = make_config(None)
    factory = build_factory(
        config, {"/echo": object(), "/chat": object()}, MemoryReactorClock(), broker=InProcessBroker()
    )
    protocol = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 1))
    protocol.makeConnection(StringTransport())
    response = Peer(protocol, protocol.transport).request(http_request("/api/publish", method="POST", body=b"{}"))
    assert response.status == 404


class DownBroker(InProcessBroker):
    state = LinkState.DOWN


@pytest.mark.parametrize(("required", "status"), [(False, 200), (True, 503)])
def test_healthz_is_503_only_while_a_required_broker_is_down(required, status):
    """A down broker makes /healthz 503 only with [broker] required = true."""
    config = make_config(f'[broker]\nurl = "redis://127.0.0.1:1/0"\nrequired = {str(required).lower()}\n')
    factory = build_factory(config, {"/echo": object(), "/chat": object()}, MemoryReactorClock(), broker=DownBroker())
    protocol = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 1))
    protocol.makeConnection(StringTransport())
    response = Peer(protocol, protocol.transport).request(http_request("/healthz"))
    assert response.status == status


def test_a_client_that_leaves_before_the_answer_is_not_written_to():
    """A publish still pending when the client disconnects finishes without writing to the closed request."""
    pending: Deferred = Deferred()

    class SlowBroker(InProcessBroker):
        def publish(self, channel, message, exclude=None, local_fallback=True, history=None):
            return pending

    api = Api(SlowBroker())
    address = IPv4Address("TCP", "127.0.0.1", 40000)
    protocol = api.factory.buildProtocol(address)
    protocol.makeConnection(StringTransport())
    body = json.dumps({"channel": "/chat/room1", "data": "x"}).encode()
    protocol.dataReceived(http_request("/api/publish", method="POST", headers=(AUTH,), body=body))
    from twisted.internet.error import ConnectionLost
    from twisted.python.failure import Failure

    protocol.connectionLost(Failure(ConnectionLost()))
    pending.callback(None)  # would raise if the answer were written to the finished request
