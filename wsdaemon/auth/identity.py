"""The verified identity of a connection, as handlers see it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

_NO_CLAIMS: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Identity:
    """Who an authenticator verified a request as.

    It travels with the request into ``buildProtocol`` and stays on the transport afterwards,
    so a handler can decide per message too (never in a global: two connections, two identities).

    Attributes:
        scheme: the authenticator that verified it ("jwt", "basic", "none", or a plugin's name).
        subject: the user: a JWT's ``sub`` claim, the basic-auth user name; None when anonymous.
        claims: a JWT's verified claims (read-only), or what a plugin chose to pass on.
        expires_at: when the credential stops being valid, in POSIX seconds (a JWT's ``exp``),
            or None; with ``close_on_expiry = true`` the connection is closed with 1008 then.
    """

    scheme: str
    subject: str | None = None
    claims: Mapping[str, Any] = field(default_factory=lambda: _NO_CLAIMS)
    expires_at: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.claims, MappingProxyType):
            object.__setattr__(self, "claims", MappingProxyType(dict(self.claims)))


#: The identity of a request on an endpoint without authentication.
ANONYMOUS = Identity("none")
