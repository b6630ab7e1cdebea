"""The "session" authenticator: who holds this session cookie? The deployment's own backend knows.

For each upgrade request it sends ``GET backend_url`` with the request's session cookie, and the
backend answers:

* ``200`` with a JSON object ``{"user": "alice", ...}``: let in, as ``alice``; the other fields
  become the identity's claims (so ``channels`` works with the broadcast handler's ``channels_claim``);
* ``401`` or ``403``: the session is unknown or over: 401 to the client;
* anything else, or no answer: 503 to the client (fail closed: nobody gets in because the
  backend is down). A backend that is slow is cut off by the endpoint's ``timeout_seconds``.

The answer is a Deferred: the daemon goes on serving others while the backend thinks.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from twisted.internet.defer import CancelledError, Deferred
from twisted.python.failure import Failure
from twisted.web.client import Agent, HTTPConnectionPool, ResponseFailed, ResponseNeverReceived, readBody
from twisted.web.http_headers import Headers
from twisted.web.iweb import IAgent, IResponse
from zope.interface import implementer

from wsdaemon.auth.errors import AuthenticationUnavailable
from wsdaemon.handlers.options import OptionReader
from wsdaemon.interfaces import (
    AuthenticationRequired,
    HandlerContext,
    HandlerOptionsError,
    IAuthenticator,
    Identity,
)

#: A backend's answer is a small JSON object; anything bigger is refused unread.
MAX_ANSWER_BYTES = 64 * 1024


@implementer(IAuthenticator)
class SessionAuthenticator:
    """Asks ``agent`` (an HTTP client) about the session cookie of each upgrade request."""

    def __init__(self, agent: IAgent, backend_url: str, cookie_name: str = "session") -> None:
        self.agent = agent
        self.backend_url = backend_url.encode("ascii")
        self.cookie_name = cookie_name
        self.challenge = f'Session cookie="{cookie_name}"'  # no standard scheme exists for cookies

    def authenticate(self, request: Any) -> Deferred[Identity | None]:
        """Fires with the identity the backend vouches for, or fails with 401 or 503.

        Raises:
            AuthenticationRequired: the request has no session cookie (the backend is not asked).
        """
        session = request.getCookie(self.cookie_name.encode("ascii"))
        if not session:
            raise AuthenticationRequired("log in first", self.challenge, why="session: no session cookie")
        headers = Headers({b"Cookie": [self.cookie_name.encode("ascii") + b"=" + session]})
        asked = self.agent.request(b"GET", self.backend_url, headers)
        return asked.addCallbacks(self._answered, _unreachable)

    def _answered(self, response: IResponse) -> Deferred[Identity | None]:
        """The backend's verdict, from its status and (for 200) its JSON body."""
        if response.code in (401, 403):
            response.deliverBody(_Discard())
            raise AuthenticationRequired("log in first", self.challenge, why=f"session: backend said {response.code}")
        if response.code != 200 or response.length == 0 or _too_long(response):
            response.deliverBody(_Discard())
            raise AuthenticationUnavailable(f"session: backend answered {response.code}")
        return readBody(response).addCallbacks(_identity, _unreachable)


def _too_long(response: IResponse) -> bool:
    """Whether the backend announced a body bigger than any answer it should give."""
    length = response.length
    return isinstance(length, int) and length > MAX_ANSWER_BYTES


def _identity(body: bytes) -> Identity:
    """``{"user": ..., claims...}`` as an identity; anything else means the backend is broken: 503."""
    try:
        answer = json.loads(body)
    except ValueError:
        raise AuthenticationUnavailable("session: backend answered 200 without JSON") from None
    if not isinstance(answer, dict) or not isinstance(answer.get("user"), str):
        raise AuthenticationUnavailable('session: backend answered 200 without a "user"')
    return Identity(answer["user"], "session", {name: value for name, value in answer.items() if name != "user"})


def _unreachable(failure: Failure) -> Failure:
    """No (whole) answer (connection refused, reset...): 503. A cancel (the endpoint's timeout) passes.

    Twisted's Agent reports a cancelled request as ResponseNeverReceived (or ResponseFailed)
    holding the CancelledError, so those are looked into.
    """
    reasons = failure.value.reasons if failure.check(ResponseNeverReceived, ResponseFailed) else [failure]
    if any(reason.check(CancelledError) for reason in reasons):
        return failure
    raise AuthenticationUnavailable(f"session: backend unreachable ({failure.type.__name__})")


class _Discard:
    """A body consumer that drops what it gets (so the connection can be reused)."""

    def makeConnection(self, transport: Any) -> None:
        """Nothing to set up."""

    def dataReceived(self, data: bytes) -> None:
        """Drop it."""

    def connectionLost(self, reason: Failure) -> None:
        """Done."""


def build_authenticator(options: Mapping[str, Any], endpoint: str, context: HandlerContext) -> SessionAuthenticator:
    """The endpoint's authenticator (called at start and on every SIGHUP).

    Raises:
        HandlerOptionsError: ``backend_url`` is missing or not an http(s) URL.
    """
    read = OptionReader(options)
    url = read.string("backend_url", expected="an http:// or https:// URL")
    if not url.startswith(("http://", "https://")):
        raise HandlerOptionsError("backend_url", "an http:// or https:// URL", url)
    pool = HTTPConnectionPool(context.reactor, persistent=True)
    agent = Agent(context.reactor, connectTimeout=5, pool=pool)
    return SessionAuthenticator(agent, url, read.string("cookie_name", "session"))
