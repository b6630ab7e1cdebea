"""The ``[[endpoints]]`` tables: paths (no clashes), handlers, origins, subprotocols, limits, deflate."""

from __future__ import annotations

import dataclasses
import math
import re
import types
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from wsdaemon.config.auth import parse_auth
from wsdaemon.config.checks import MISSING, Report, array_of_tables, checked_table, join_key, string_list
from wsdaemon.config.limits import ENDPOINT_LIMIT_KEYS, parse_limits
from wsdaemon.config.model import DEMO_PATH, DEMO_STATIC_PATH, HEALTH_PATH, MAX_MESSAGE_RATE, EndpointConfig
from wsdaemon.core.deflate import DEFLATE_RANGES, DeflateSettings
from wsdaemon.core.http import is_token
from wsdaemon.core.limits import Limits
from wsdaemon.ratelimit import MessageRate

_ENDPOINT_KEYS = (
    "path",
    "handler",
    "options",
    "subprotocols",
    "allowed_origins",
    "limits",
    "deflate",
    "auth",
    "message_rate",
    "message_burst",
)
_DEFLATE_KEYS = tuple(f.name for f in dataclasses.fields(DeflateSettings))
_PATH = re.compile(r"/[^?#\s\x00-\x1f\x7f-\x9f]*")
_ORIGIN_HOST = re.compile(r"[^/?#@\s\x00-\x1f\x7f-\x9f]+")
_PATH_EXPECTED = 'a URL path starting with "/", without "?", "#", spaces or control characters'
_TOKEN_EXPECTED = 'an HTTP token (RFC 9110 §5.6.2), such as "chat.v1"'
_ORIGIN_EXPECTED = '"*" or an origin such as "https://example.com" (scheme://host[:port], no path or trailing "/")'


#: The built-in chat's ``broadcast`` options: one channel per path below ``/chat`` (the demo page
#: joins ``/chat/lobby``), JSON envelopes so pages resume after a reconnect, and the last
#: messages kept for them (docs/recovery.md).
DEFAULT_CHAT_OPTIONS: Mapping[str, Any] = types.MappingProxyType(
    {"channel_from_path": True, "envelope": "json", "history_size": 100}
)


def default_endpoints(limits: Limits) -> tuple[EndpointConfig, ...]:
    """The built-in endpoint list, under the file's global limits: ``/echo`` and the ``/chat/`` channels."""
    return (
        EndpointConfig("/echo", "echo", types.MappingProxyType({}), (), (), limits),
        EndpointConfig("/chat", "broadcast", DEFAULT_CHAT_OPTIONS, (), (), limits),
    )


def parse_endpoints(value: Any, limits: Limits, demo_page: bool, report: Report) -> tuple[EndpointConfig, ...]:
    """The ``[[endpoints]]`` tables, with path clashes checked across them."""
    endpoints: list[EndpointConfig] = []
    seen = {HEALTH_PATH: "the health check"}
    if demo_page:
        seen[DEMO_PATH] = "the demo page ([http] demo_page = true)"
        seen[DEMO_STATIC_PATH] = "the demo page's script"
    for index, item in enumerate(array_of_tables(value, "endpoints", report)):
        key = f"endpoints[{index}]"
        endpoint = _endpoint(item, key, limits, report)
        if endpoint is None or not endpoint.path:
            continue
        clash = next((owner for path, owner in seen.items() if _paths_overlap(path, endpoint.path)), None)
        if clash is not None:
            report.add(
                f"{key}.path", f"a path not equal to, inside or above the one used by {clash}", repr(endpoint.path)
            )
        seen.setdefault(endpoint.path, f"{key}.path")
        endpoints.append(endpoint)
    return tuple(endpoints)


def _paths_overlap(first: str, second: str) -> bool:
    """Whether one URL path equals or contains the other ("/a" and "/a/b"); "/" only equals itself."""
    if DEMO_PATH in (first, second):
        return first == second
    one, two = first.strip("/").split("/"), second.strip("/").split("/")
    shorter = min(len(one), len(two))
    return one[:shorter] == two[:shorter]


def _endpoint(value: Any, key: str, limits: Limits, report: Report) -> EndpointConfig | None:
    """One ``[[endpoints]]`` table; a bad field is reported and left empty (the caller raises)."""
    table = checked_table(value, key, _ENDPOINT_KEYS, report)
    if table is None:
        return None
    path = table.get("path", MISSING)
    if not isinstance(path, str) or not _PATH.fullmatch(path):
        report.bad(f"{key}.path", _PATH_EXPECTED, path)
        path = ""
    handler = table.get("handler", MISSING)
    if not isinstance(handler, str) or not handler.strip():
        report.bad(f"{key}.handler", 'the name of a handler plugin, such as "echo"', handler)
        handler = ""
    options = table.get("options", {})
    if not isinstance(options, dict):
        report.bad(f"{key}.options", "a table of handler options", options)
        options = {}
    subprotocols = string_list(table.get("subprotocols", []), f"{key}.subprotocols", is_token, _TOKEN_EXPECTED, report)
    origins = string_list(
        table.get("allowed_origins", []), f"{key}.allowed_origins", _is_origin, _ORIGIN_EXPECTED, report
    )
    endpoint_limits = parse_limits(table.get("limits"), f"{key}.limits", limits, ENDPOINT_LIMIT_KEYS, report)
    deflate = _deflate(table.get("deflate", {}), f"{key}.deflate", report)
    auth = parse_auth(table.get("auth"), f"{key}.auth", report)
    rate = _message_rate(table, key, report)
    return EndpointConfig(
        path, handler, types.MappingProxyType(options), subprotocols, origins, endpoint_limits, deflate, auth, rate
    )


def _message_rate(table: dict[str, Any], key: str, report: Report) -> MessageRate | None:
    """``message_rate`` (per second, off unless set) and ``message_burst`` (default: one second's worth)."""
    rate, burst = table.get("message_rate"), table.get("message_burst")
    if rate is None:
        if burst is not None:
            report.bad(
                f"{key}.message_burst", "message_rate in the same [[endpoints]] table (a burst needs a rate)", burst
            )
        return None
    if type(rate) not in (int, float) or not 0.01 <= rate <= MAX_MESSAGE_RATE:
        report.bad(f"{key}.message_rate", f"a number of messages per second from 0.01 to {MAX_MESSAGE_RATE}", rate)
        return None
    if burst is None:
        burst = max(1, math.ceil(rate))
    elif type(burst) is not int or not 1 <= burst <= MAX_MESSAGE_RATE:
        report.bad(f"{key}.message_burst", f"an integer number of messages from 1 to {MAX_MESSAGE_RATE}", burst)
        return None
    return MessageRate(float(rate), burst)


def _deflate(value: Any, key: str, report: Report) -> DeflateSettings:
    """An endpoint's ``[endpoints.deflate]`` table over the permessage-deflate defaults."""
    table = checked_table(value, key, _DEFLATE_KEYS, report) or {}
    changes: dict[str, Any] = {}
    for name, item in table.items():
        if name not in _DEFLATE_KEYS:
            continue
        if name not in DEFLATE_RANGES:
            if isinstance(item, bool):
                changes[name] = item
            else:
                report.bad(join_key(key, name), "true or false", item)
            continue
        low, high = DEFLATE_RANGES[name]
        if type(item) is int and low <= item <= high:
            changes[name] = item
        else:
            report.bad(join_key(key, name), f"an integer from {low} to {high}", item)
    return DeflateSettings(**changes)


def _is_origin(text: str) -> bool:
    """Whether ``text`` is "*" or a bare origin (RFC 6454 §6.2), the only form browsers send."""
    if text == "*":
        return True
    if not _ORIGIN_HOST.fullmatch(text.partition("://")[2]):
        return False
    try:
        parts = urlsplit(text)
        _ = parts.port  # a non-numeric or out-of-range port raises ValueError
    except ValueError:
        return False
    return parts.hostname is not None and text.lower().startswith(f"{parts.scheme}://")
