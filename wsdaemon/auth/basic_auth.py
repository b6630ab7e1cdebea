"""``type = "basic"``: HTTP Basic authentication (RFC 7617) against an htpasswd file of bcrypt hashes.

Rules for this file:

* bcrypt is slow on purpose (a fraction of a second per check at cost 12), so the check runs in
  the reactor's thread pool, never in the reactor thread; at most ``max_pending_checks`` run or
  wait at once, and a request beyond that gets 503 + Retry-After (a flood of guesses cannot
  queue without bound).
* An unknown user costs the same check as a known one (against another user's hash), so the
  answer's timing does not tell which user names exist.
* The log names the user for a wrong password, but not for an unknown user: what was typed as
  a user name may be a password.
* Like Apache's ``htpasswd -B``, only the first 72 bytes of a password count (bcrypt's limit).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import bcrypt
from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThreadPool
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest
from zope.interface import implementer

from wsdaemon.auth.errors import AuthenticationUnavailable, Unauthorized, quoted
from wsdaemon.auth.htpasswd import load_htpasswd
from wsdaemon.handlers.options import OptionReader
from wsdaemon.interfaces import HandlerContext, IAuthenticator, Identity

#: bcrypt uses the first 72 bytes of a password (and the bcrypt package refuses longer ones).
BCRYPT_MAX_PASSWORD_BYTES = 72

#: Runs ``check(password, hashed)`` off the reactor thread and fires with its result.
CheckRunner = Callable[[Callable[[bytes, bytes], bool], bytes, bytes], "Deferred[bool]"]


@dataclass(frozen=True)
class BasicSettings:
    """An endpoint's validated ``basic`` options."""

    htpasswd_file: str
    realm: str = "wsdaemon"
    max_pending_checks: int = 32


def read_basic_settings(options: Mapping[str, Any]) -> BasicSettings:
    """Validate the options (the file is read by :func:`load_users`).

    Raises:
        HandlerOptionsError: an option is missing or of the wrong type.
    """
    read = OptionReader(options)
    return BasicSettings(
        htpasswd_file=read.string("htpasswd_file", expected="the path of an htpasswd file (htpasswd -B)"),
        realm=read.string("realm", "wsdaemon"),
        max_pending_checks=read.integer("max_pending_checks", 32, 1, 10_000),
    )


def load_users(settings: BasicSettings) -> dict[str, bytes]:
    """The users and hashes of the settings' file.

    Raises:
        KeyFileError: the file cannot be read or holds anything but user:bcrypt-hash lines.
    """
    return load_htpasswd("htpasswd_file", settings.htpasswd_file)


def check_password(password: bytes, hashed: bytes) -> bool:
    """Whether ``password`` matches the bcrypt ``hashed`` (run in a thread: it is slow on purpose)."""
    return bcrypt.checkpw(password[:BCRYPT_MAX_PASSWORD_BYTES], hashed)


@implementer(IAuthenticator)
class BasicAuthenticator:
    """Checks ``Authorization: Basic`` against one htpasswd file's users (answers with a Deferred)."""

    def __init__(self, settings: BasicSettings, users: Mapping[str, bytes], run_check: CheckRunner) -> None:
        self.settings = settings
        self.users = dict(users)
        self.decoy = next(iter(self.users.values()))  # an unknown user's check costs the same
        self.run_check = run_check
        self.pending = 0

    @property
    def challenge(self) -> str:
        """RFC 7617 §2: the realm, and that user names and passwords are UTF-8."""
        return f'Basic realm={quoted(self.settings.realm)}, charset="UTF-8"'

    def authenticate(self, request: IRequest) -> Deferred[Identity | None]:
        """Fires with the user's identity once the password is checked.

        Raises:
            Unauthorized: no Basic credentials, or unreadable ones (the Deferred fails with it
                for a wrong password or an unknown user).
            AuthenticationUnavailable: ``max_pending_checks`` checks are already under way.
        """
        user, password = self._credentials(request)
        if self.pending >= self.settings.max_pending_checks:
            raise AuthenticationUnavailable(f"basic: {self.pending} password checks already under way")
        hashed = self.users.get(user)
        self.pending += 1
        checked = self.run_check(check_password, password, self.decoy if hashed is None else hashed)

        def done(matches: bool) -> Identity | None:
            self.pending -= 1
            if hashed is None:
                raise Unauthorized("basic: unknown user", self.challenge)
            if not matches:
                raise Unauthorized(f"basic: wrong password for user {user!r}", self.challenge)
            return Identity(user, "basic")

        def failed(failure: Failure) -> Failure:
            self.pending -= 1
            return failure

        return checked.addCallbacks(done, failed)

    def _credentials(self, request: IRequest) -> tuple[str, bytes]:
        """The user name and password of the one ``Authorization: Basic`` header.

        Raises:
            Unauthorized: none, several, or one that is not base64 of UTF-8 ``user:password``.
        """
        values: list[bytes] = request.requestHeaders.getRawHeaders(b"authorization") or []
        basic = [value[6:].strip() for value in values if value[:6].lower() == b"basic "]
        if not basic:
            raise Unauthorized("basic: no credentials", self.challenge)
        if len(basic) > 1:
            raise Unauthorized("basic: several Authorization: Basic headers", self.challenge)
        try:
            user, colon, password = base64.b64decode(basic[0], validate=True).partition(b":")
            name = user.decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise Unauthorized("basic: credentials not base64 of UTF-8 text", self.challenge) from None
        if not colon:
            raise Unauthorized("basic: credentials without a colon", self.challenge)
        return name, password


def thread_pool_runner(reactor: Any) -> CheckRunner:
    """Runs each password check in ``reactor``'s thread pool (bcrypt releases the GIL while it hashes)."""

    def run(check: Callable[[bytes, bytes], bool], password: bytes, hashed: bytes) -> Deferred[bool]:
        return deferToThreadPool(reactor, reactor.getThreadPool(), check, password, hashed)

    return run


def build_authenticator(options: Mapping[str, Any], endpoint: str, context: HandlerContext) -> BasicAuthenticator:
    """The ``basic`` authenticator of one endpoint, its htpasswd file read now (at start, or on SIGHUP).

    Raises:
        HandlerOptionsError: an option is invalid, or the file unusable (KeyFileError).
    """
    settings = read_basic_settings(options)
    return BasicAuthenticator(settings, load_users(settings), thread_pool_runner(context.reactor))
