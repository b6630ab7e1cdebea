"""Rejections before the upgrade, each carrying its HTTP answer and, apart, why (for the log).

Each is a :class:`~wsdaemon.interfaces.ConnectionRejected`, so the endpoint answers it as it
answers a handler's refusal: the status, the headers and the short text body. ``why`` (the
rejection's log-only reason) is for the operator's log line; it is built from our own words (never from a token or a
password), and is not sent to the client, which learns only what the status tells it.
"""

from __future__ import annotations

from wsdaemon.interfaces import AuthenticationRequired, ConnectionRejected, HandlerOptionsError


def quoted(text: str) -> str:
    """An RFC 9110 §5.6.4 quoted-string (for ``realm`` and ``error_description``)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


class Unauthorized(AuthenticationRequired):
    """401: no credential, or one that does not verify (RFC 9110 §15.5.2).

    Args:
        why: for the log: what was wrong ("token expired"), never the credential itself.
        challenge: the ``WWW-Authenticate`` value telling the client which scheme to use.
    """

    def __init__(self, why: str, challenge: str) -> None:
        super().__init__("authentication required", challenge, why=why)


class Forbidden(ConnectionRejected):
    """403: the credential is valid, but it does not allow this (a channel outside its claim)."""

    def __init__(self, why: str, reason: str = "not allowed for this identity") -> None:
        super().__init__(403, reason, why=why)


class AuthenticationUnavailable(ConnectionRejected):
    """503 + ``Retry-After``: the check could not be made (its backend is slow or down).

    Failing closed: a request is never let in because its check did not answer.
    """

    def __init__(self, why: str, retry_after_seconds: int = 5) -> None:
        super().__init__(
            503, "authentication unavailable, try again later", [("Retry-After", str(retry_after_seconds))]
        )
        self.why = why


class KeyFileError(HandlerOptionsError):
    """A key or password file named by an option cannot be used; names the option and the file.

    ``got`` is already in words (``'/etc/wsdaemon/jwt.key' (No such file or directory)``).
    """

    def __init__(self, option: str, expected: str, path: str, problem: str) -> None:
        super().__init__(option, expected, f"{path!r} ({problem})")
        self.path = path
        self.problem = problem

    def __str__(self) -> str:
        return f"{self.option}: expected {self.expected}, got {self.got}"
