"""Basic authentication: a bcrypt check off the reactor thread, 401 for anything wrong, 503 when flooded."""

from __future__ import annotations

import base64
from collections.abc import Callable

import bcrypt
import pytest
from twisted.internet.defer import Deferred, succeed
from twisted.trial.unittest import SynchronousTestCase

from tests.auth.support import request
from wsdaemon.auth.basic_auth import BasicAuthenticator, BasicSettings, read_basic_settings
from wsdaemon.auth.errors import AuthenticationUnavailable, Unauthorized
from wsdaemon.interfaces import HandlerOptionsError

USERS = {
    "alice": bcrypt.hashpw(b"wonderland", bcrypt.gensalt(4)),
    "bob": bcrypt.hashpw("pässword".encode(), bcrypt.gensalt(4)),
}


def basic(user: str, password: str) -> list[tuple[str, str]]:
    """An Authorization: Basic header (RFC 7617, UTF-8)."""
    return [("Authorization", "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode())]


class Runner:
    """Runs checks at once (as the thread pool would, later), recording which hashes were checked."""

    def __init__(self) -> None:
        self.checked: list[bytes] = []

    def __call__(self, check: Callable[[bytes, bytes], bool], password: bytes, hashed: bytes) -> Deferred[bool]:
        self.checked.append(hashed)
        return succeed(check(password, hashed))


class BasicAuthTests(SynchronousTestCase):
    """The authenticator with an in-line check runner (no threads, no reactor)."""

    def setUp(self) -> None:
        self.runner = Runner()
        self.authenticator = BasicAuthenticator(BasicSettings("users"), USERS, self.runner)

    def refusal(self, headers: list[tuple[str, str]]) -> Unauthorized:
        """The 401 a request with ``headers`` gets, synchronously or through the Deferred."""
        try:
            result = self.authenticator.authenticate(request(headers=headers))
        except Unauthorized as error:
            return error
        return self.failureResultOf(result, Unauthorized).value

    def test_right_password_gives_the_user(self):
        """The right password yields an identity named after the user (UTF-8 passwords too)."""
        identity = self.successResultOf(self.authenticator.authenticate(request(headers=basic("bob", "pässword"))))
        self.assertEqual((identity.method, identity.name), ("basic", "bob"))

    def test_wrong_password_gets_401_naming_the_user_not_the_password(self):
        """A wrong password is 401 with a Basic challenge; the log names the user, never the password."""
        error = self.refusal(basic("alice", "guess"))
        self.assertEqual(error.why, "basic: wrong password for user 'alice'")
        self.assertEqual(error.headers, [("WWW-Authenticate", 'Basic realm="wsdaemon", charset="UTF-8"')])

    def test_unknown_user_costs_a_check_and_is_not_named(self):
        """An unknown user is checked against a real hash (same cost), and what was typed is not logged."""
        error = self.refusal(basic("wonderland", "alice"))
        self.assertEqual(error.why, "basic: unknown user")
        self.assertEqual(len(self.runner.checked), 1)
        self.assertIn(self.runner.checked[0], USERS.values())

    def test_missing_and_unreadable_credentials_get_401(self):
        """No header, a Bearer header, bad base64 or no colon: 401 without any check run."""
        for headers in ([], [("Authorization", "Bearer x")], [("Authorization", "Basic !!!")]):
            self.assertEqual(self.refusal(headers).status, 401)
        no_colon = [("Authorization", "Basic " + base64.b64encode(b"alice").decode())]
        self.assertEqual(self.refusal(no_colon).why, "basic: credentials without a colon")
        self.assertEqual(self.runner.checked, [])

    def test_checks_beyond_the_bound_get_503(self):
        """max_pending_checks checks at once; one more gets 503 + Retry-After; a finished one frees a place."""
        waiting: list[Deferred[bool]] = []

        def slow(check: Callable[[bytes, bytes], bool], password: bytes, hashed: bytes) -> Deferred[bool]:
            waiting.append(Deferred())
            return waiting[-1]

        authenticator = BasicAuthenticator(BasicSettings("users", max_pending_checks=2), USERS, slow)
        first = authenticator.authenticate(request(headers=basic("alice", "wonderland")))
        authenticator.authenticate(request(headers=basic("alice", "wonderland")))
        with pytest.raises(AuthenticationUnavailable) as info:
            authenticator.authenticate(request(headers=basic("alice", "wonderland")))
        self.assertEqual((info.value.status, info.value.headers), (503, [("Retry-After", "5")]))
        waiting[0].callback(True)
        self.assertEqual(self.successResultOf(first).name, "alice")
        self.assertIsInstance(authenticator.authenticate(request(headers=basic("alice", "x"))), Deferred)


def test_htpasswd_file_is_required():
    """basic without htpasswd_file is refused at start, naming the option."""
    with pytest.raises(HandlerOptionsError) as info:
        read_basic_settings({})
    assert info.value.option == "htpasswd_file"
