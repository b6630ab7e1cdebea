"""The session authenticator against a fake backend: no sockets, no reactor (Deferreds fire at once)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from twisted.application.service import MultiService
from twisted.internet.defer import CancelledError, Deferred, fail, succeed
from twisted.internet.error import ConnectionRefusedError
from twisted.python.failure import Failure
from twisted.web.client import ResponseDone, ResponseNeverReceived
from wsdaemon_session_auth import SessionAuthenticator, build_authenticator

from wsdaemon.interfaces import ConnectionRejected, HandlerContext, HandlerOptionsError


class FakeResponse:
    """An HTTP response of the backend: a status and a body."""

    def __init__(self, code: int, body: bytes = b"") -> None:
        self.code = code
        self.body = body
        self.length = len(body)
        self.phrase = b"OK"
        self.headers = None

    def deliverBody(self, protocol: Any) -> None:
        protocol.dataReceived(self.body)
        protocol.connectionLost(Failure(ResponseDone()))


class FakeAgent:
    """An HTTP client that answers every request with ``answer`` and records what was asked."""

    def __init__(self, answer: Deferred[Any]) -> None:
        self.answer = answer
        self.asked: list[tuple[bytes, bytes, Any]] = []

    def request(self, method: bytes, uri: bytes, headers: Any = None, bodyProducer: Any = None) -> Deferred[Any]:
        self.asked.append((method, uri, headers))
        return self.answer


class FakeRequest:
    """An upgrade request with cookies."""

    def __init__(self, **cookies: str) -> None:
        self.cookies = {name.encode(): value.encode() for name, value in cookies.items()}

    def getCookie(self, name: bytes) -> bytes | None:
        return self.cookies.get(name)


def verdict(answer: Deferred[Any], **cookies: str) -> Any:
    """What the authenticator concludes for a request with ``cookies`` when the backend gives ``answer``."""
    results: list[Any] = []
    authenticator = SessionAuthenticator(FakeAgent(answer), "http://backend/session")
    authenticator.authenticate(FakeRequest(**cookies)).addBoth(results.append)
    return results[0]


def test_backend_yes_gives_the_user_and_its_claims():
    """A 200 with {"user": ...} lets the request in as that user; other fields are claims."""
    body = json.dumps({"user": "alice", "channels": ["/chat/a"]}).encode()
    identity = verdict(succeed(FakeResponse(200, body)), session="s1")
    assert (identity.name, identity.method, identity.claims) == ("alice", "session", {"channels": ["/chat/a"]})


def test_the_session_cookie_is_what_the_backend_is_asked_about():
    """The backend gets GET backend_url with the request's session cookie."""
    agent = FakeAgent(succeed(FakeResponse(200, b'{"user": "alice"}')))
    SessionAuthenticator(agent, "http://backend/session").authenticate(FakeRequest(session="s1"))
    method, uri, headers = agent.asked[0]
    assert (method, uri, headers.getRawHeaders(b"cookie")) == (b"GET", b"http://backend/session", [b"session=s1"])


@pytest.mark.parametrize(
    ("answer", "status"),
    [
        (succeed(FakeResponse(401)), 401),
        (succeed(FakeResponse(403)), 401),
        (succeed(FakeResponse(500)), 503),
        (succeed(FakeResponse(200, b"not json")), 503),
        (fail(ConnectionRefusedError()), 503),
    ],
)
def test_backend_no_is_401_and_a_broken_backend_is_503(answer, status):
    """The backend saying no gives 401; an error status, bad answer or no answer gives 503 (fail closed)."""
    result = verdict(answer, session="s1")
    assert isinstance(result.value, ConnectionRejected)
    assert result.value.status == status
    assert "s1" not in result.value.why


def test_no_cookie_is_401_without_asking():
    """Without the session cookie the backend is not asked at all."""
    agent = FakeAgent(Deferred())
    with pytest.raises(ConnectionRejected) as info:
        SessionAuthenticator(agent, "http://backend/session").authenticate(FakeRequest())
    assert info.value.status == 401
    assert agent.asked == []


@pytest.mark.parametrize(
    "cancelled", [CancelledError(), ResponseNeverReceived([Failure(CancelledError())])], ids=["plain", "agent"]
)
def test_a_cancel_passes_through(cancelled):
    """When the endpoint gives up (its timeout), the cancel is not turned into another answer."""
    result = verdict(fail(cancelled), session="s1")
    assert result.check(CancelledError, ResponseNeverReceived)
    assert not isinstance(result.value, ConnectionRejected)


def test_backend_url_must_be_http():
    """backend_url is required and must be an http(s) URL."""
    with pytest.raises(HandlerOptionsError):
        build_authenticator({"backend_url": "ftp://x"}, "/chat", HandlerContext(None, MultiService()))
