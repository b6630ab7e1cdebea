"""The ``[broker]`` and ``[api]`` tables: Redis for channels across processes, the HTTP API for backends."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from typing import Any
from urllib.parse import unquote, urlsplit

from wsdaemon.config.checks import MISSING, Report, checked_table, file_path, join_key, string_list
from wsdaemon.config.model import DEMO_PATH, HEALTH_PATH, ApiConfig, BrokerConfig, EndpointConfig, ListenerConfig

_BROKER_NUMBERS = {  # name: (minimum, maximum, integer?)
    "max_pending_messages": (0, 10_000_000, True),
    "connect_timeout_seconds": (0.1, 3600.0, False),
    "reconnect_initial_seconds": (0.01, 3600.0, False),
    "reconnect_max_seconds": (0.01, 86400.0, False),
    "presence_refresh_seconds": (0.1, 3600.0, False),
}
_BROKER_KEYS = ("url", "password_file", "tls_ca_file", "prefix", "required", *_BROKER_NUMBERS)
_API_KEYS = ("token_file", "publish_path", "presence_path", "listeners")
_URL_EXPECTED = 'a Redis URL: "redis://HOST:PORT/DB", "rediss://HOST:PORT/DB" (TLS) or "unix:/PATH/redis.sock?db=N"'
_PREFIX = re.compile(r"[!-~]{0,64}")  # printable ASCII without spaces: safe in keys, logs and redis-cli lines
_API_PATH = re.compile(r"(/[A-Za-z0-9._~!$&'()*+,;=:@-]+)+")


def parse_broker(value: Any, report: Report) -> BrokerConfig | None:
    """The ``[broker]`` table, or None (the in-process broker) when it is absent."""
    if value is None:
        return None
    table = checked_table(value, "broker", _BROKER_KEYS, report)
    if table is None:
        return None
    url = table.get("url", MISSING)
    parts = _url(url, report)
    changes: dict[str, Any] = {}
    for name, (low, high, integer) in _BROKER_NUMBERS.items():
        if name in table:
            number = _number(table[name], low, high, integer)
            if number is None:
                kind = "an integer" if integer else "a number"
                report.bad(join_key("broker", name), f"{kind} from {low} to {high}", table[name])
            else:
                changes[name] = number
    prefix = table.get("prefix", BrokerConfig.prefix)
    if not isinstance(prefix, str) or not _PREFIX.fullmatch(prefix):
        report.bad("broker.prefix", 'at most 64 printable ASCII characters without spaces, such as "wsdaemon:"', prefix)
        prefix = BrokerConfig.prefix
    required = table.get("required", False)
    if not isinstance(required, bool):
        report.bad("broker.required", "true or false", required)
        required = False
    password_file = file_path(table, "password_file", "broker", "a file holding the Redis password", report, False)
    tls_ca_file = file_path(table, "tls_ca_file", "broker", "a PEM file of the CAs to trust", report, False)
    if tls_ca_file is not None and parts is not None and parts.scheme != "rediss":
        report.bad("broker.tls_ca_file", 'a "rediss://" url (TLS) in the same table', tls_ca_file)
    config = parts or BrokerConfig("", "redis")
    config = dataclasses.replace(
        config, password_file=password_file, tls_ca_file=tls_ca_file, prefix=prefix, required=required, **changes
    )
    if config.reconnect_initial_seconds > config.reconnect_max_seconds:
        report.bad(
            "broker.reconnect_initial_seconds", "at most reconnect_max_seconds", config.reconnect_initial_seconds
        )
    return config


def _number(value: Any, low: float, high: float, integer: bool) -> int | float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (integer and not isinstance(value, int)):
        return None
    if not low <= value <= high:
        return None
    return value if integer else float(value)


def _url(value: Any, report: Report) -> BrokerConfig | None:
    """The parts of a Redis URL; a password in it is refused (it belongs in ``password_file``)."""
    if not isinstance(value, str):
        report.bad("broker.url", _URL_EXPECTED, value)
        return None
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        report.bad("broker.url", _URL_EXPECTED, value)
        return None
    if parts.password is not None:
        report.add("broker.url", "a URL without a password (put it in password_file)", "a URL with a password")
        return None
    db = _db(parts.path if parts.scheme != "unix" else "", parts.query)
    if parts.scheme == "unix":
        path = unquote(parts.path)
        if not path.startswith("/") or parts.netloc or db is None:
            report.bad("broker.url", _URL_EXPECTED, value)
            return None
        return BrokerConfig(value, "unix", path=path, db=db)
    if parts.scheme not in ("redis", "rediss") or not parts.hostname or db is None or parts.query:
        report.bad("broker.url", _URL_EXPECTED, value)
        return None
    return BrokerConfig(
        value, parts.scheme, host=parts.hostname, port=port or 6379, db=db, username=parts.username or None
    )


def _db(path: str, query: str) -> int | None:
    """The database number from "/N" (redis://) or "db=N" (unix:); 0 when absent."""
    text = path.strip("/") if path else ""
    if query:
        if not query.startswith("db=") or text:
            return None
        text = query[3:]
    if not text:
        return 0
    return int(text) if text.isdigit() and int(text) <= 15_999 else None


def parse_api(
    value: Any,
    endpoints: Sequence[EndpointConfig],
    listeners: Sequence[ListenerConfig],
    demo_page: bool,
    report: Report,
) -> ApiConfig | None:
    """The ``[api]`` table, or None (no API) when it is absent."""
    if value is None:
        return None
    table = checked_table(value, "api", _API_KEYS, report)
    if table is None:
        return None
    token_file = file_path(table, "token_file", "api", "a file holding the bearer token backends send", report)
    taken = {HEALTH_PATH: "the health check", **{endpoint.path: "an endpoint" for endpoint in endpoints}}
    paths = {}
    for name in ("publish_path", "presence_path"):
        path = table.get(name, getattr(ApiConfig, name))
        owner = _path_owner(path, taken, demo_page) if isinstance(path, str) else None
        if not isinstance(path, str) or not _API_PATH.fullmatch(path):
            report.bad(join_key("api", name), 'a URL path such as "/api/publish" (segments of URL characters)', path)
        elif owner is not None:
            report.add(
                join_key("api", name), f"a path not equal to, inside or above the one used by {owner}", repr(path)
            )
        else:
            taken[path] = f"api.{name}"
            paths[name] = path
    known = [listener.endpoint for listener in listeners]
    served = string_list(
        table.get("listeners", []),
        "api.listeners",
        lambda item: item in known,
        "the endpoint string of a listener: " + ", ".join(repr(item) for item in known),
        report,
    )
    return ApiConfig(token_file or "", listeners=served, **paths)


def _path_owner(path: str, taken: dict[str, str], demo_page: bool) -> str | None:
    """Who already uses ``path`` or a path inside or above it."""
    if demo_page and path == DEMO_PATH:
        return "the demo page"
    mine = path.strip("/").split("/")
    for other, owner in taken.items():
        theirs = other.strip("/").split("/")
        if other != "/" and mine[: len(theirs)] == theirs[: len(mine)]:
            return owner
    return None
