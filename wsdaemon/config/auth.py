"""An endpoint's ``[endpoints.auth]`` table: which authenticator, and what the endpoint does with it.

The keys every authenticator shares are checked here; all the others are the authenticator's
own options, handed to its plugin, which checks them when the service is built (so a typo is
reported as ``endpoints[N].auth.KEY`` either way).
"""

from __future__ import annotations

import types
from typing import Any

from wsdaemon.config.checks import Report, join_key
from wsdaemon.config.model import AuthConfig

#: Keys of ``[endpoints.auth]`` that are not the authenticator's options.
AUTH_KEYS = ("type", "close_on_expiry", "timeout_seconds")
#: Bounds of ``timeout_seconds``: how long an asynchronous check may take before 503.
TIMEOUT_RANGE = (0.1, 300.0)


def parse_auth(value: Any, key: str, report: Report) -> AuthConfig:
    """The ``[endpoints.auth]`` table (absent: no authentication)."""
    if value is None:
        return AuthConfig()
    if not isinstance(value, dict):
        report.bad(key, "a table ([endpoints.auth])", value)
        return AuthConfig()
    kind = value.get("type", "none")
    if not isinstance(kind, str) or not kind.strip():
        report.bad(join_key(key, "type"), 'the name of an authenticator, such as "jwt", "basic" or "none"', kind)
        kind = "none"
    close_on_expiry = value.get("close_on_expiry", False)
    if not isinstance(close_on_expiry, bool):
        report.bad(join_key(key, "close_on_expiry"), "true or false", close_on_expiry)
        close_on_expiry = False
    timeout = value.get("timeout_seconds")
    low, high = TIMEOUT_RANGE
    if timeout is not None and (
        isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not low <= timeout <= high
    ):
        report.bad(join_key(key, "timeout_seconds"), f"a number from {low} to {high}", timeout)
        timeout = None
    options = {name: item for name, item in value.items() if name not in AUTH_KEYS}
    return AuthConfig(
        kind, types.MappingProxyType(options), close_on_expiry, None if timeout is None else float(timeout)
    )
