"""The authentication step of a WebSocket endpoint: refusing before the 101, answering later, and the identity.

Each test mounts one ``WebSocketResource`` with a test authenticator at /secure
in a ``DaemonSite`` wrapped in a ``SwitchingFactory`` sharing one admission,
and speaks raw HTTP to it over a ``StringTransport`` (no socket).
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, fail, succeed
from twisted.logger import LogLevel, capturedLogs
from twisted.web.resource import Resource
from zope.interface import implementer

from tests.adapter.recording import SECRET, RecordingFactory
from tests.web.stack import Peer, Stack, parse_response, upgrade_request
from wsdaemon.adapter.switching import SwitchingFactory
from wsdaemon.auth import NoAuthentication
from wsdaemon.interfaces import AuthenticationRequired, ConnectionRejected, IAuthenticator, Identity
from wsdaemon.web.resource import WebSocketResource
from wsdaemon.web.site import DaemonSite

ALICE = Identity("alice", "test", {"channels": ["/chat/a"]})


@implementer(IAuthenticator)
class Answering:
    """Answers every request with ``answer``: an identity, None, a Deferred, or an exception to raise."""

    def __init__(self, answer: Any) -> None:
        self.answer = answer
        self.requests: list[Any] = []

    def authenticate(self, request: Any) -> Any:
        self.requests.append(request)
        if isinstance(self.answer, BaseException):
            raise self.answer
        return self.answer


@implementer(IAuthenticator)
class Later:
    """Answers each request with a new Deferred the test fires; remembers which ones were cancelled."""

    def __init__(self) -> None:
        self.pending: list[Deferred[Identity | None]] = []
        self.cancelled: list[Deferred[Identity | None]] = []

    def authenticate(self, request: Any) -> Deferred[Identity | None]:
        pending: Deferred[Identity | None] = Deferred(self.cancelled.append)
        self.pending.append(pending)
        return pending


class SecureStack(Stack):
    """The default stack, with /secure guarded by ``authenticator`` (in the same tree, with the same admission)."""

    def __init__(self, authenticator: Any, config: str | None = None) -> None:
        super().__init__(config)
        self.handlers = RecordingFactory()
        self.authenticator = authenticator
        admission = self.factory.admission
        root = Resource()
        limits = self.config.limits
        secure = WebSocketResource(
            self.handlers, self.clock, admission=admission, authenticator=authenticator, limits=limits, path="/secure"
        )
        root.putChild(b"secure", secure)
        self.factory = SwitchingFactory(DaemonSite(root, self.config, self.clock), limits, self.clock, admission)

    def attempt(self, **kwargs: Any) -> Peer:
        """A connection that sent an upgrade request for /secure (answered or not yet)."""
        peer = self.connect()
        peer.send(upgrade_request("/secure", **kwargs))
        return peer


# --- refusing before the handshake ------------------------------------------------------------


def test_refusal_is_401_with_www_authenticate_and_builds_no_handler():
    """An authenticator raising AuthenticationRequired gets 401 with its challenge; no handler, no 101."""
    stack = SecureStack(Answering(AuthenticationRequired("token expired", challenge='Bearer realm="chat"')))
    with capturedLogs() as events:
        response = parse_response(stack.attempt().take())
    assert (response.status, response.header("www-authenticate")) == (401, 'Bearer realm="chat"')
    assert response.body == b"token expired\n"
    assert stack.handlers.requests == []
    assert any("authentication refused" in event.get("log_format", "") for event in events)


def test_authenticator_may_refuse_with_any_status():
    """A ConnectionRejected from the authenticator (403 here) is answered with its own status and headers."""
    stack = SecureStack(Answering(ConnectionRejected(403, "not a member", [("X-Why", "membership")])))
    response = parse_response(stack.attempt().take())
    assert (response.status, response.header("x-why")) == (403, "membership")


def test_bad_handshakes_are_refused_before_the_authenticator_is_asked():
    """A request the handshake refuses (a bad version: 426) never reaches the authenticator."""
    authenticator = Answering(ALICE)
    stack = SecureStack(authenticator)
    assert parse_response(stack.attempt(version="8").take()).status == 426
    assert authenticator.requests == []


def test_admission_refuses_before_the_authenticator_is_asked():
    """A client over its per-address limit gets 503 without costing an authentication."""
    authenticator = Answering(ALICE)
    stack = SecureStack(authenticator, "[limits]\nmax_connections_per_ip = 1\n")
    first = stack.attempt()
    assert parse_response(first.take()).status == 101
    assert parse_response(stack.attempt().take()).status == 503
    assert len(authenticator.requests) == 1


def test_the_connection_rate_refuses_before_the_authenticator_is_asked():
    """A client past connection_burst_per_ip gets 429 with Retry-After without costing an authentication."""
    authenticator = Answering(ALICE)
    stack = SecureStack(authenticator, "[limits]\nconnection_burst_per_ip = 2\nconnection_rate_per_ip = 0.25\n")
    assert [parse_response(stack.attempt().take()).status for _ in range(2)] == [101, 101]
    refused = parse_response(stack.attempt().take())
    assert (refused.status, refused.header("retry-after")) == (429, "4")
    assert len(authenticator.requests) == 2
    stack.clock.advance(4)
    assert parse_response(stack.attempt().take()).status == 101


def test_an_authenticator_bug_is_500_without_details_on_the_wire():
    """An authenticator raising anything else gets 500; its text and traceback go only to the log."""
    stack = SecureStack(Answering(RuntimeError(SECRET)))
    with capturedLogs() as events:
        written = stack.attempt().take()
    assert written.startswith(b"HTTP/1.1 500 ")
    assert SECRET.encode() not in written and b"Traceback" not in written
    assert any(event.get("log_failure") is not None for event in events)


# --- the identity ---------------------------------------------------------------------------------


def test_identity_reaches_the_handler_on_the_request_and_the_transport():
    """The verified identity is request.identity in buildProtocol, then transport.identity."""
    stack = SecureStack(Answering(ALICE))
    assert parse_response(stack.attempt().take()).status == 101
    (request,) = stack.handlers.requests
    (handler,) = stack.handlers.handlers
    assert request.identity is ALICE
    assert handler.transport.identity is ALICE
    assert handler.transport.identity.claims["channels"] == ["/chat/a"]


def test_none_lets_everyone_in_anonymously():
    """The default authenticator, none, upgrades every request; handlers see identity None."""
    stack = SecureStack(NoAuthentication())
    assert parse_response(stack.attempt().take()).status == 101
    assert stack.handlers.requests[0].identity is None
    assert stack.handlers.handlers[0].transport.identity is None


def test_endpoints_default_to_no_authentication():
    """An endpoint built from the configuration alone upgrades anonymous clients, identity None."""
    stack = Stack()
    stack.upgraded("/echo")
    (handler,) = stack.factories["/echo"].handlers
    assert handler.transport.identity is None


# --- answering later (a Deferred) -------------------------------------------------------------------


def test_asynchronous_identity_upgrades_when_it_arrives():
    """While the authenticator's Deferred is pending nothing is written; when it fires, the 101 goes out."""
    authenticator = Later()
    stack = SecureStack(authenticator)
    peer = stack.attempt()
    assert peer.take() == b""
    assert stack.handlers.requests == []
    authenticator.pending[0].callback(ALICE)
    assert parse_response(peer.take()).status == 101
    assert stack.handlers.handlers[0].transport.identity is ALICE


def test_asynchronous_refusal_is_401_and_the_connection_stays_usable():
    """A Deferred failing with AuthenticationRequired is answered 401 with a length; the next request is served."""
    authenticator = Later()
    stack = SecureStack(authenticator)
    peer = stack.attempt()
    authenticator.pending[0].errback(AuthenticationRequired(challenge="Bearer"))
    response = parse_response(peer.take())
    assert (response.status, response.header("www-authenticate")) == (401, "Bearer")
    assert response.header("content-length") == str(len(response.body))
    peer.send(upgrade_request("/secure"))
    authenticator.pending[1].callback(None)
    assert parse_response(peer.take()).status == 101


def test_asynchronous_failure_is_500_without_details_on_the_wire():
    """A Deferred failing with an unexpected error gets 500; the error is logged, not sent."""
    stack = SecureStack(Answering(fail(RuntimeError(SECRET))))
    with capturedLogs() as events:
        written = stack.attempt().take()
    assert written.startswith(b"HTTP/1.1 500 ")
    assert SECRET.encode() not in written and b"Traceback" not in written
    assert any(event.get("log_failure") is not None and event["log_level"] is LogLevel.critical for event in events)


def test_an_already_fired_deferred_upgrades_at_once():
    """An authenticator answering with a fired Deferred upgrades within the same render."""
    stack = SecureStack(Answering(succeed(ALICE)))
    assert parse_response(stack.attempt().take()).status == 101
    assert stack.handlers.requests[0].identity is ALICE


def test_no_answer_within_handshake_timeout_is_503():
    """An authenticator that never answers is cancelled after handshake_timeout_seconds: 503 with Retry-After."""
    authenticator = Later()
    stack = SecureStack(authenticator, "[limits]\nhandshake_timeout_seconds = 4\n")
    peer = stack.attempt()
    stack.clock.advance(3.9)
    assert peer.take() == b""
    with capturedLogs():
        stack.clock.advance(0.2)
    response = parse_response(peer.take())
    assert response.status == 503 and response.header("retry-after")
    assert authenticator.cancelled == authenticator.pending
    assert stack.handlers.requests == []


def test_client_leaving_while_authenticating_cancels_it_and_builds_nothing():
    """A client that disconnects before the answer: the Deferred is cancelled, no handler, no count left."""
    authenticator = Later()
    stack = SecureStack(authenticator)
    peer = stack.attempt()
    with capturedLogs() as events:
        peer.lose()
    assert authenticator.cancelled == authenticator.pending
    assert authenticator.pending[0].called
    assert stack.handlers.requests == [] and peer.take() == b""
    assert stack.factory.admission.clients() == {}
    assert [event for event in events if event["log_level"] >= LogLevel.error] == []


def test_answer_after_the_client_left_is_ignored():
    """An authenticator without a canceller that answers after the client left changes nothing, quietly."""
    pending: Deferred[Identity | None] = Deferred()
    stack = SecureStack(Answering(pending))
    peer = stack.attempt()
    with capturedLogs() as events:
        peer.lose()
        pending.callback(ALICE)  # a Deferred cancelled without a canceller ignores its late answer
    assert stack.handlers.requests == [] and peer.take() == b""
    assert [event for event in events if event["log_level"] >= LogLevel.warn] == []
