"""Authentication in the endpoint pipeline: 401/403/503 before any 101, the identity after, expiry on the tick.

The full listener stack runs on a ``MemoryReactorClock`` over ``StringTransport``s (DESIGN §2.6,
tier 2); the authenticators are the built-in plugins, built as the service builds them.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from twisted.application.service import MultiService
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import formatEvent, globalLogPublisher
from zope.interface import implementer

from tests.auth.support import SECRET, token, write
from tests.helpers import Opcode, close_payload
from tests.web.stack import Stack, make_config, upgrade_request
from wsdaemon.auth.errors import AuthenticationUnavailable, Unauthorized
from wsdaemon.auth.resolve import resolve_authenticators
from wsdaemon.config import Config, Problem
from wsdaemon.handlers.broadcast import build_factory as broadcast_factory
from wsdaemon.interfaces import HandlerContext, IAuthenticator, Identity
from wsdaemon.plugins import discover_authenticators

JWT_ENDPOINT = """
[[endpoints]]
path = "/chat"
handler = "echo"
[endpoints.auth]
type = "jwt"
algorithms = ["HS256"]
secret_file = "{secret}"
{extra}
"""


@pytest.fixture
def logged() -> Iterator[list[dict[str, Any]]]:
    """Every log event emitted during the test."""
    events: list[dict[str, Any]] = []
    globalLogPublisher.addObserver(events.append)
    yield events
    globalLogPublisher.removeObserver(events.append)


def jwt_stack(tmp_path: Path, extra: str = "", clock: MemoryReactorClock | None = None, **kwargs: Any) -> Stack:
    """A stack whose /chat endpoint takes HS256 tokens signed with SECRET."""
    secret = write(tmp_path / "secret", SECRET)
    config = make_config(JWT_ENDPOINT.format(secret=secret, extra=extra))
    return Stack(config, authenticators=built(config), clock=clock, **kwargs)


def built(config: Config) -> dict[str, Any]:
    """The config's authenticators, as the service builds them (no problem expected)."""
    problems: list[Problem] = []
    guards = resolve_authenticators(
        config, discover_authenticators(), HandlerContext(MemoryReactorClock(), MultiService()), problems
    )
    assert problems == []
    return guards


def bearer(presented: str) -> list[tuple[str, str]]:
    """The Authorization header carrying ``presented``."""
    return [("Authorization", f"Bearer {presented}")]


# --- refused before the 101 ------------------------------------------------------------------------


def test_no_token_gets_401_before_any_101(tmp_path):
    """Without a token the upgrade is answered 401 with a Bearer challenge; no 101, no handler."""
    stack = jwt_stack(tmp_path)
    peer = stack.connect()
    response = peer.request(upgrade_request("/chat"))
    assert response.status == 401
    assert response.header("www-authenticate") == 'Bearer realm="wsdaemon"'
    assert response.header("sec-websocket-accept") is None
    assert peer.protocol.upgraded is None
    assert stack.factories["/chat"].requests == []


def test_refusal_is_logged_with_why_but_never_the_token(tmp_path, logged):
    """The log says the token expired and who sent it, and holds no part of the token."""
    expired = token(exp=int(time.time()) - 60)
    response = jwt_stack(tmp_path).connect().request(upgrade_request("/chat", headers=bearer(expired)))
    assert response.status == 401
    assert 'error_description="the token has expired"' in response.header("www-authenticate")
    lines = [formatEvent(event) for event in logged]
    assert any("authentication refused 203.0.113.5" in line and "jwt: token expired" in line for line in lines)
    assert all(part not in line for line in lines for part in expired.split("."))


def test_unknown_authenticator_type_stops_the_start():
    """type = "nosuch" is reported as an unknown authenticator, naming the installed ones."""
    config = make_config('[[endpoints]]\npath = "/x"\nhandler = "echo"\n[endpoints.auth]\ntype = "nosuch"\n')
    problems: list[Problem] = []
    resolve_authenticators(
        config, discover_authenticators(), HandlerContext(MemoryReactorClock(), MultiService()), problems
    )
    assert problems == [Problem("endpoints[0].auth.type", "an installed authenticator: basic, jwt, none", "'nosuch'")]


def test_an_endpoint_with_auth_but_no_authenticator_is_never_left_open(tmp_path):
    """Building the site without the endpoint's authenticator is an error, not an open endpoint."""
    secret = write(tmp_path / "secret", SECRET)
    with pytest.raises(ValueError, match="/chat"):
        Stack(make_config(JWT_ENDPOINT.format(secret=secret, extra="")))


# --- let in, with an identity -------------------------------------------------------------------------


def test_valid_token_reaches_the_handler_with_its_identity(tmp_path):
    """A valid token upgrades; buildProtocol sees request.identity and the handler transport.identity."""
    stack = jwt_stack(tmp_path)
    response = stack.connect().request(upgrade_request("/chat", headers=bearer(token(room="lobby"))))
    assert response.status == 101
    identity = stack.factories["/chat"].requests[0].identity
    assert (identity.name, identity.method, identity.claims["room"]) == ("alice", "jwt", "lobby")
    assert stack.factories["/chat"].handlers[0].transport.identity is identity


def test_none_gives_handlers_no_identity():
    """On an endpoint without authentication, request.identity and transport.identity are None."""
    stack = Stack()
    assert stack.connect().request(upgrade_request("/echo")).status == 101
    assert stack.factories["/echo"].requests[0].identity is None
    assert stack.factories["/echo"].handlers[0].transport.identity is None


# --- close_on_expiry: the shared tick ----------------------------------------------------------------


def expiring_peer(tmp_path: Path, close_on_expiry: bool) -> tuple[Stack, Any]:
    """An upgraded connection whose token expires 5 s after it opened (on the stack's clock)."""
    expires = int(time.time()) + 3600
    clock = MemoryReactorClock()
    clock.advance(expires - 5)
    stack = jwt_stack(tmp_path, f"close_on_expiry = {'true' if close_on_expiry else 'false'}", clock=clock)
    peer = stack.connect()
    assert peer.request(upgrade_request("/chat", headers=bearer(token(exp=expires)))).status == 101
    return stack, peer


def test_close_on_expiry_closes_with_1008_when_the_token_expires(tmp_path):
    """With close_on_expiry, the once-a-second tick closes the connection with 1008 once exp has passed."""
    stack, peer = expiring_peer(tmp_path, close_on_expiry=True)
    stack.clock.advance(4)
    assert peer.frames() == []
    stack.clock.advance(1)
    stack.clock.advance(1)
    assert peer.frames() == [(True, Opcode.CLOSE, close_payload(1008, b"credentials expired"))]


def test_without_close_on_expiry_an_expired_token_stays_connected(tmp_path):
    """close_on_expiry is off by default: the token's exp only matters at the upgrade."""
    stack, peer = expiring_peer(tmp_path, close_on_expiry=False)
    stack.clock.advance(10)
    assert peer.frames() == []


# --- asynchronous authenticators -------------------------------------------------------------------------


@implementer(IAuthenticator)
class Backend:
    """An authenticator that answers with whatever Deferred the test gives it, and counts cancels."""

    def __init__(self, answer: Deferred[Identity | None]) -> None:
        self.answer = answer

    def authenticate(self, request: Any) -> Deferred[Identity | None]:
        return self.answer


def backend_stack(answer: Deferred[Identity | None], timeout: str = "") -> Stack:
    """A stack whose /chat endpoint asks ``Backend(answer)``."""
    config = make_config(
        f'[[endpoints]]\npath = "/chat"\nhandler = "echo"\n[endpoints.auth]\ntype = "backend"\n{timeout}\n'
    )
    return Stack(config, authenticators={"/chat": Backend(answer)})


def test_a_late_yes_upgrades_then():
    """An authenticator answering later upgrades the request when it answers, with its identity."""
    answer: Deferred[Identity | None] = Deferred()
    stack = backend_stack(answer)
    peer = stack.connect()
    peer.send(upgrade_request("/chat"))
    assert peer.take() == b""
    answer.callback(Identity("bob", "backend"))
    assert peer.take().startswith(b"HTTP/1.1 101 ")
    assert stack.factories["/chat"].requests[0].identity.name == "bob"


@pytest.mark.parametrize(
    ("verdict", "status"),
    [
        (Unauthorized("backend: session unknown", 'Cookie realm="app"'), 401),
        (AuthenticationUnavailable("backend: connection refused"), 503),
    ],
)
def test_a_late_no_or_a_backend_down_is_refused(verdict, status):
    """A backend that says no gets 401; one that cannot be reached gets 503 (fail closed)."""
    peer = backend_stack(fail(verdict)).connect()
    response = peer.request(upgrade_request("/chat"))
    assert response.status == status
    assert peer.protocol.upgraded is None


def test_a_backend_that_never_answers_gets_503_after_timeout_seconds():
    """timeout_seconds bounds the wait: then 503 + Retry-After, and the pending check is cancelled."""
    cancelled: list[bool] = []
    answer: Deferred[Identity | None] = Deferred(lambda _: cancelled.append(True))
    stack = backend_stack(answer, "timeout_seconds = 2")
    peer = stack.connect()
    peer.send(upgrade_request("/chat"))
    stack.clock.advance(1.9)
    assert peer.take() == b""
    stack.clock.advance(0.2)
    written = peer.take()
    assert written.startswith(b"HTTP/1.1 503 ") and b"Retry-After: " in written
    assert cancelled == [True]


def test_a_timeout_is_503_whatever_the_authenticator_makes_of_the_cancel():
    """An authenticator that turns the cancel into another failure still gets the client 503 at the timeout."""

    def translate(deferred: Deferred[Identity | None]) -> None:
        deferred.errback(RuntimeError("the check was interrupted"))

    stack = backend_stack(Deferred(translate), "timeout_seconds = 1")
    peer = stack.connect()
    peer.send(upgrade_request("/chat"))
    stack.clock.advance(1)
    assert peer.take().startswith(b"HTTP/1.1 503 ")


def test_a_synchronous_yes_needs_no_wait():
    """An already-fired Deferred upgrades at once."""
    assert (
        backend_stack(succeed(Identity("carol", "backend"))).connect().request(upgrade_request("/chat")).status == 101
    )


# --- the broadcast handler's channels claim ---------------------------------------------------------------


def test_channels_claim_lets_a_user_into_its_channels_only(tmp_path, logged):
    """With channels_claim, /chat/a (in the token's claim) upgrades and /chat/b gets 403 before any 101."""
    secret = write(tmp_path / "secret", SECRET)
    config = make_config(
        JWT_ENDPOINT.format(secret=secret, extra="").replace('handler = "echo"', 'handler = "broadcast"')
    )
    options = {"channel_from_path": True, "channels_claim": "channels"}
    stack = Stack(config, factories={"/chat": broadcast_factory(options, "/chat")}, authenticators=built(config))
    credential = bearer(token(channels=["/chat/a", "/news/*"]))
    assert stack.connect().request(upgrade_request("/chat/a", headers=credential)).status == 101
    refused = stack.connect()
    response = refused.request(upgrade_request("/chat/b", headers=credential))
    assert response.status == 403
    assert refused.protocol.upgraded is None
    lines = [formatEvent(event) for event in logged]
    assert any("handler refused" in line and "channel /chat/b is not in the 'channels' claim" in line for line in lines)


def test_channels_claim_without_an_identity_lets_no_one_in():
    """channels_claim on an endpoint without authentication refuses every channel (fail closed)."""
    config = make_config('[[endpoints]]\npath = "/chat"\nhandler = "broadcast"\n')
    options = {"channel_from_path": True, "channels_claim": "channels"}
    stack = Stack(config, factories={"/chat": broadcast_factory(options, "/chat")})
    assert stack.connect().request(upgrade_request("/chat/a")).status == 403


def test_access_log_line_of_a_refused_upgrade_holds_no_query_token(tmp_path, logged):
    """twisted.web's access line for a 401 shows the URL with the token parameter's value replaced."""
    expired = token(exp=int(time.time()) - 60)
    stack = jwt_stack(tmp_path, 'token_from = ["query"]')
    stack.factory.doStart()  # twisted.web opens its access log when the factory starts
    try:
        assert stack.connect().request(upgrade_request(f"/chat?token={expired}&room=1")).status == 401
    finally:
        stack.factory.doStop()
    lines = [formatEvent(event) for event in logged]
    assert any('"GET /chat?token=[redacted]&room=1 HTTP/1.1" 401' in line for line in lines)
    assert all(expired not in line for line in lines)
