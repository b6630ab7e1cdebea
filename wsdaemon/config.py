"""The daemon's configuration: one TOML file parsed into frozen dataclasses.

Rules for this file:

* Everything is validated up front; every problem (key, expected, got) is collected and raised
  as one :class:`ConfigError`, so nothing is half-applied.
* A file overrides only what it names; a list (``[[listeners]]``, ``[[endpoints]]``) that is
  present replaces the default list whole.
* ``[limits]`` keys and ranges are those of :class:`~wsdaemon.core.limits.Limits`.
* No Twisted here: listener endpoint strings are only checked for being non-empty strings;
  Twisted parses them when the service is built.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
import tomllib
import types
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from wsdaemon.core.deflate import DEFLATE_RANGES, DeflateSettings
from wsdaemon.core.http import is_token
from wsdaemon.core.limits import Limits, limit_ranges

DEFAULT_LISTEN = "tcp:8080:interface=127.0.0.1"

#: Paths the site serves itself, which no endpoint may take.
HEALTH_PATH = "/healthz"
DEMO_PATH = "/"
DEMO_STATIC_PATH = "/static"

#: Limits that bound a whole listener (its accept loop or its HTTP side), so a
#: per-endpoint override could never take effect: they belong in ``[limits]``.
LISTENER_LIMITS = frozenset(
    {
        "handshake_timeout_seconds",
        "max_connections",
        "max_connections_per_ip",
        "http_max_headers",
        "http_max_header_bytes",
        "drain_timeout_seconds",
    }
)

_TOP_KEYS = ("listeners", "http", "limits", "endpoints", "static")
_HTTP_KEYS = ("demo_page",)
_LISTENER_KEYS = (
    "endpoint",
    "tls",
    "certificate",
    "private_key",
    "sni",
    "client_ca",
    "client_certs",
    "min_tls_version",
    "ciphers",
    "expiry_warning_days",
)
_TLS_KEYS = _LISTENER_KEYS[2:]
_SNI_KEYS = ("server_name", "certificate", "private_key")
_CLIENT_CERTS = ("none", "optional", "required")
_TLS_VERSIONS = ("1.2", "1.3")
_SERVER_NAME = re.compile(r"(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
_ENDPOINT_KEYS = ("path", "handler", "options", "subprotocols", "allowed_origins", "limits", "deflate")
_DEFLATE_KEYS = tuple(f.name for f in dataclasses.fields(DeflateSettings))
_RANGES = limit_ranges()
_LIMIT_KEYS = tuple(_RANGES)
_ENDPOINT_LIMIT_KEYS = tuple(name for name in _LIMIT_KEYS if name not in LISTENER_LIMITS)
_FLOAT_LIMITS = frozenset(f.name for f in dataclasses.fields(Limits) if isinstance(f.default, float))
_WRITE_BUFFER_KEYS = frozenset({"write_buffer_high_bytes", "write_buffer_max_bytes"})

_MISSING: Any = object()  # stands for a required key that is absent; described as "missing"
_MAX_GOT_CHARS = 60
_PATH = re.compile(r"/[^?#\s\x00-\x1f\x7f-\x9f]*")
_ORIGIN_HOST = re.compile(r"[^/?#@\s\x00-\x1f\x7f-\x9f]+")
_PATH_EXPECTED = 'a URL path starting with "/", without "?", "#", spaces or control characters'
_LISTEN_EXPECTED = 'a Twisted server endpoint string such as "tcp:8080:interface=127.0.0.1"'
_TOKEN_EXPECTED = 'an HTTP token (RFC 9110 §5.6.2), such as "chat.v1"'
_ORIGIN_EXPECTED = '"*" or an origin such as "https://example.com" (scheme://host[:port], no path or trailing "/")'


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a configuration, in words a person can act on."""

    key: str
    expected: str
    got: str


class ConfigError(Exception):
    """Every problem in one configuration source; ``str()`` is the whole report, printable as is."""

    def __init__(self, source: str, problems: list[Problem]) -> None:
        super().__init__(source, problems)
        self.source = source
        self.problems = problems

    def __str__(self) -> str:
        lines = [f"invalid configuration in {self.source}:"]
        lines.extend(f"  {p.key}: expected {p.expected}, got {p.got}" for p in self.problems)
        return "\n".join(lines)


@dataclass(frozen=True)
class SNIConfig:
    """One more certificate on a TLS listener, served to clients asking for ``server_name``."""

    server_name: str  # lower case; "*.example.com" covers exactly one more label
    certificate: str
    private_key: str


@dataclass(frozen=True)
class TLSConfig:
    """A TLS listener's certificates and policy; files are read by :mod:`wsdaemon.tls`."""

    certificate: str
    private_key: str
    sni: tuple[SNIConfig, ...] = ()
    client_ca: str | None = None
    client_certs: str = "none"  # "none", "optional" or "required"
    min_tls_version: str = "1.2"
    ciphers: str | None = None  # None: wsdaemon.tls.MODERN_CIPHERS
    expiry_warning_days: int = 14


@dataclass(frozen=True)
class ListenerConfig:
    """One listening socket, as a Twisted server endpoint string, with TLS on top if ``tls`` is set."""

    endpoint: str
    tls: TLSConfig | None = None


@dataclass(frozen=True)
class EndpointConfig:
    """One WebSocket URL path, the handler behind it and its policy.

    ``options`` is a read-only view of the handler's free-form table, which the
    handler plugin validates. ``limits`` has this endpoint's overrides applied.
    """

    path: str
    handler: str
    options: Mapping[str, Any] = field(hash=False)
    subprotocols: tuple[str, ...]
    allowed_origins: tuple[str, ...]
    limits: Limits
    deflate: DeflateSettings = field(default_factory=DeflateSettings)


@dataclass(frozen=True)
class StaticMount:
    """A directory served as plain files at a URL path (``[[static]]``); nothing outside it is served."""

    path: str
    directory: str


@dataclass(frozen=True)
class Config:
    """The whole validated configuration; ``source`` is None for the built-in defaults."""

    source: str | None
    listeners: tuple[ListenerConfig, ...]
    limits: Limits
    endpoints: tuple[EndpointConfig, ...]
    demo_page: bool
    static: tuple[StaticMount, ...] = ()


def default_config() -> Config:
    """The configuration used when no file is given: an echo endpoint on localhost."""
    limits = Limits()
    return Config(None, (ListenerConfig(DEFAULT_LISTEN),), limits, _default_endpoints(limits), True)


def _default_endpoints(limits: Limits) -> tuple[EndpointConfig, ...]:
    """The built-in endpoint list, under the file's global limits."""
    return (EndpointConfig("/echo", "echo", types.MappingProxyType({}), (), (), limits),)


def load_config(path: str | None, listen_override: Sequence[str] = ()) -> Config:
    """Read and validate a configuration file, or the defaults when ``path`` is None.

    Args:
        path: the TOML file, or None for the built-in defaults.
        listen_override: ``--listen`` values; if any, they replace the listeners.

    Raises:
        ConfigError: the file is unreadable or invalid (every problem listed).
    """
    if path is None:  # an empty document is the defaults; only --listen can be wrong
        return dataclasses.replace(parse_config("", "command-line options", listen_override), source=None)
    return parse_config(_read(path), path, listen_override)


def parse_config(text: str, source: str, listen_override: Sequence[str] = ()) -> Config:
    """Validate TOML text into a :class:`Config` (``source`` names it in errors).

    Raises:
        ConfigError: the text is not TOML or does not fit the schema.
    """
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(source, [Problem("(file)", "valid TOML", str(error))]) from None
    report = _Report()
    config = _with_listen_override(_build_config(document, source, report), listen_override, report)
    report.raise_if_any(source)
    return config


def _read(path: str) -> str:
    """The file's text; TOML is UTF-8 (a leading BOM is tolerated for hand-edited files)."""
    try:
        with open(path, "rb") as stream:
            data = stream.read()
    except OSError as error:
        raise ConfigError(path, [Problem("(file)", "a readable file", error.strerror or str(error))]) from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        got = f"a byte that is not UTF-8 at offset {error.start}"
        raise ConfigError(path, [Problem("(file)", "valid TOML (UTF-8 text)", got)]) from None


def _with_listen_override(config: Config, listen_override: Sequence[str], report: _Report) -> Config:
    """Apply ``--listen`` values, which win over the file's listeners (the file is still checked)."""
    if not listen_override:
        return config
    listeners = _endpoint_strings([(f"--listen[{i}]", value) for i, value in enumerate(listen_override)], report)
    return dataclasses.replace(config, listeners=listeners)


class _Report:
    """The problems found so far; validation goes on past each one so all are reported."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def add(self, key: str, expected: str, got: str) -> None:
        """Record a problem whose ``got`` is already in words."""
        self.problems.append(Problem(key, expected, got))

    def bad(self, key: str, expected: str, value: Any) -> None:
        """Record a value that does not fit, described close to how it was written."""
        self.add(key, expected, _describe(value))

    def raise_if_any(self, source: str) -> None:
        """Raise everything collected as one error."""
        if self.problems:
            raise ConfigError(source, self.problems)


def _describe(value: Any) -> str:
    """A short, one-line rendering of a TOML value for the "got" part of a problem."""
    if value is _MISSING:
        return "missing"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a table"
    text = repr(value)
    return text if len(text) <= _MAX_GOT_CHARS else text[: _MAX_GOT_CHARS - 3] + "..."


def _join(prefix: str, name: str) -> str:
    """A dotted key path; a name that is not a bare TOML key is quoted, as TOML would."""
    if not re.fullmatch(r"[A-Za-z0-9_-]+", name):
        name = '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return f"{prefix}.{name}" if prefix else name


def _table(value: Any, key: str, allowed: Sequence[str], report: _Report) -> dict[str, Any] | None:
    """The value if it is a table, else None; unknown keys (usually typos) are reported."""
    if not isinstance(value, dict):
        report.bad(key, "a table", value)
        return None
    for name in value:
        if name not in allowed:
            _unknown_key(_join(key, name), name, allowed, report)
    return value


def _unknown_key(key: str, name: str, allowed: Sequence[str], report: _Report) -> None:
    """Report one unknown key, suggesting the nearest known one."""
    close = difflib.get_close_matches(name, allowed, n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    report.add(key, "one of: " + ", ".join(allowed), "an unknown key" + hint)


def _array_of_tables(value: Any, key: str, report: _Report) -> list[Any]:
    """The value if it is a non-empty list, else an empty list after reporting."""
    if not isinstance(value, list):
        report.bad(key, f"an array of tables ([[{key}]])", value)
        return []
    if not value:
        report.add(key, f"at least one [[{key}]] table", "an empty list")
    return value


def _build_config(document: dict[str, Any], source: str, report: _Report) -> Config:
    """Overlay the document on the defaults, reporting every problem on the way."""
    _table(document, "", _TOP_KEYS, report)
    demo_page = _http(document.get("http"), report)
    limits = _limits(document.get("limits"), "limits", Limits(), _LIMIT_KEYS, report)
    listeners: tuple[ListenerConfig, ...] = (ListenerConfig(DEFAULT_LISTEN),)
    if "listeners" in document:
        listeners = _listeners(document["listeners"], report)
    endpoints = _default_endpoints(limits)
    if "endpoints" in document:
        endpoints = _endpoints(document["endpoints"], limits, demo_page, report)
    static = _static_mounts(document.get("static", []), endpoints, demo_page, report)
    return Config(source, listeners, limits, endpoints, demo_page, static)


def _http(value: Any, report: _Report) -> bool:
    """The ``[http]`` table: whether to serve the demo page."""
    table = {} if value is None else _table(value, "http", _HTTP_KEYS, report) or {}
    demo_page = table.get("demo_page", True)
    if not isinstance(demo_page, bool):
        report.bad("http.demo_page", "true or false", demo_page)
        return True
    return demo_page


def _limits(value: Any, key: str, base: Limits, allowed: Sequence[str], report: _Report) -> Limits:
    """A limits table over ``base`` (the defaults, or the global limits for an endpoint)."""
    if value is None:
        return base
    if not isinstance(value, dict):
        report.bad(key, "a table", value)
        return base
    changes: dict[str, int | float] = {}
    for name, item in value.items():
        number = _limit_value(name, item)
        if name in allowed and number is not None:
            changes[name] = number
        elif name in allowed:
            minimum, maximum = _RANGES[name]
            kind = "a number" if name in _FLOAT_LIMITS else "an integer"
            report.bad(_join(key, name), f"{kind} from {minimum} to {maximum}", item)
        elif name in LISTENER_LIMITS:
            hint = f"a per-connection limit ({name} is listener-wide and belongs in [limits])"
            report.bad(_join(key, name), hint, item)
        else:
            _unknown_key(_join(key, name), name, allowed, report)
    limits = base.replace(**changes)
    _check_write_buffers(limits, value, changes, key, report)
    return limits


def _limit_value(name: str, value: Any) -> int | float | None:
    """The value if it fits the limit's type and range (a bool is no integer; NaN fails)."""
    if name not in _RANGES or isinstance(value, bool):
        return None
    if name in _FLOAT_LIMITS and isinstance(value, (int, float)):
        number: int | float = float(value)
    elif isinstance(value, int):
        number = value
    else:
        return None
    minimum, maximum = _RANGES[name]
    return number if minimum <= number <= maximum else None


def _check_write_buffers(
    limits: Limits, table: dict[str, Any], changes: dict[str, int | float], key: str, report: _Report
) -> None:
    """The producer must be paused (high-water mark) before a slow peer is dropped (hard cap)."""
    named = _WRITE_BUFFER_KEYS & table.keys()
    if not named or not named <= changes.keys():
        return  # not set in this table, or a bad value that is already reported
    high, cap = limits.write_buffer_high_bytes, limits.write_buffer_max_bytes
    if high <= cap:
        return
    if "write_buffer_high_bytes" in named:  # blame the key the user wrote
        report.add(_join(key, "write_buffer_high_bytes"), f"at most write_buffer_max_bytes ({cap})", repr(high))
    else:
        report.add(_join(key, "write_buffer_max_bytes"), f"at least write_buffer_high_bytes ({high})", repr(cap))


def _listeners(value: Any, report: _Report) -> tuple[ListenerConfig, ...]:
    """The ``[[listeners]]`` tables."""
    pairs: list[tuple[str, Any]] = []
    tls: dict[Any, TLSConfig | None] = {}
    for index, item in enumerate(_array_of_tables(value, "listeners", report)):
        table = _table(item, f"listeners[{index}]", _LISTENER_KEYS, report)
        if table is not None:
            endpoint = table.get("endpoint", _MISSING)
            pairs.append((f"listeners[{index}].endpoint", endpoint))
            settings = _listener_tls(table, f"listeners[{index}]", report)
            if isinstance(endpoint, str):
                tls.setdefault(endpoint, settings)
    return tuple(dataclasses.replace(item, tls=tls.get(item.endpoint)) for item in _endpoint_strings(pairs, report))


def _endpoint_strings(pairs: list[tuple[str, Any]], report: _Report) -> tuple[ListenerConfig, ...]:
    """Non-empty, distinct endpoint strings, each with its key for errors."""
    listeners: list[ListenerConfig] = []
    seen: dict[str, str] = {}
    for key, value in pairs:
        if not isinstance(value, str) or not value.strip():
            report.bad(key, _LISTEN_EXPECTED, value)
        elif value in seen:
            report.add(key, f"an endpoint not already used by {seen[value]}", repr(value))
        else:
            seen[value] = key
            listeners.append(ListenerConfig(value))
    return tuple(listeners)


def _endpoints(value: Any, limits: Limits, demo_page: bool, report: _Report) -> tuple[EndpointConfig, ...]:
    """The ``[[endpoints]]`` tables, with path clashes checked across them."""
    endpoints: list[EndpointConfig] = []
    seen = {HEALTH_PATH: "the health check"}
    if demo_page:
        seen[DEMO_PATH] = "the demo page ([http] demo_page = true)"
        seen[DEMO_STATIC_PATH] = "the demo page's script"
    for index, item in enumerate(_array_of_tables(value, "endpoints", report)):
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


def _endpoint(value: Any, key: str, limits: Limits, report: _Report) -> EndpointConfig | None:
    """One ``[[endpoints]]`` table; a bad field is reported and left empty (the caller raises)."""
    table = _table(value, key, _ENDPOINT_KEYS, report)
    if table is None:
        return None
    path = table.get("path", _MISSING)
    if not isinstance(path, str) or not _PATH.fullmatch(path):
        report.bad(f"{key}.path", _PATH_EXPECTED, path)
        path = ""
    handler = table.get("handler", _MISSING)
    if not isinstance(handler, str) or not handler.strip():
        report.bad(f"{key}.handler", 'the name of a handler plugin, such as "echo"', handler)
        handler = ""
    options = table.get("options", {})
    if not isinstance(options, dict):
        report.bad(f"{key}.options", "a table of handler options", options)
        options = {}
    subprotocols = _strings(table.get("subprotocols", []), f"{key}.subprotocols", is_token, _TOKEN_EXPECTED, report)
    origins = _strings(table.get("allowed_origins", []), f"{key}.allowed_origins", _is_origin, _ORIGIN_EXPECTED, report)
    endpoint_limits = _limits(table.get("limits"), f"{key}.limits", limits, _ENDPOINT_LIMIT_KEYS, report)
    deflate = _deflate(table.get("deflate", {}), f"{key}.deflate", report)
    return EndpointConfig(
        path, handler, types.MappingProxyType(options), subprotocols, origins, endpoint_limits, deflate
    )


def _deflate(value: Any, key: str, report: _Report) -> DeflateSettings:
    """An endpoint's ``[endpoints.deflate]`` table over the permessage-deflate defaults."""
    table = _table(value, key, _DEFLATE_KEYS, report) or {}
    changes: dict[str, Any] = {}
    for name, item in table.items():
        if name not in _DEFLATE_KEYS:
            continue
        if name not in DEFLATE_RANGES:
            if isinstance(item, bool):
                changes[name] = item
            else:
                report.bad(_join(key, name), "true or false", item)
            continue
        low, high = DEFLATE_RANGES[name]
        if type(item) is int and low <= item <= high:
            changes[name] = item
        else:
            report.bad(_join(key, name), f"an integer from {low} to {high}", item)
    return DeflateSettings(**changes)


def _strings(value: Any, key: str, check: Callable[[str], bool], expected: str, report: _Report) -> tuple[str, ...]:
    """A list of strings, each checked on its own so every bad item is named."""
    if not isinstance(value, list):
        report.bad(key, f"a list of strings, each {expected}", value)
        return ()
    for index, item in enumerate(value):
        if not isinstance(item, str) or not check(item):
            report.bad(f"{key}[{index}]", expected, item)
    return tuple(item for item in value if isinstance(item, str))


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


# TLS listeners


def _listener_tls(table: dict[str, Any], key: str, report: _Report) -> TLSConfig | None:
    """A listener's TLS settings: None unless ``tls = true``; TLS keys without it are reported."""
    enabled = table.get("tls", False)
    if not isinstance(enabled, bool):
        report.bad(f"{key}.tls", "true or false", enabled)
        return None
    if not enabled:
        for name in _TLS_KEYS:
            if name in table:
                report.bad(
                    f"{key}.{name}", "tls = true in the same [[listeners]] table (TLS settings need it)", table[name]
                )
        return None
    certificate = _path(table, "certificate", key, "a PEM certificate chain file (leaf first)", report)
    private_key = _path(table, "private_key", key, "a PEM private key file", report)
    client_ca = _path(
        table, "client_ca", key, "a PEM file of the CAs that sign client certificates", report, required=False
    )
    client_certs = _choice(table, "client_certs", key, _CLIENT_CERTS, report)
    if (client_ca is None) != (client_certs == "none"):
        report.bad(
            f"{key}.client_certs", 'a client_ca file with "optional" or "required", or "none" without one', client_certs
        )
    ciphers = table.get("ciphers")
    if ciphers is not None and (not isinstance(ciphers, str) or not ciphers.strip()):
        report.bad(f"{key}.ciphers", 'an OpenSSL cipher list such as "ECDHE+AESGCM"', ciphers)
        ciphers = None
    days = table.get("expiry_warning_days", 14)
    if type(days) is not int or not 0 <= days <= 3650:
        report.bad(f"{key}.expiry_warning_days", "an integer from 0 to 3650 (days)", days)
        days = 14
    sni = _sni(table.get("sni", []), f"{key}.sni", report)
    version = _choice(table, "min_tls_version", key, _TLS_VERSIONS, report)
    return TLSConfig(certificate, private_key, sni, client_ca, client_certs, version, ciphers, days)


def _path(table: dict[str, Any], name: str, key: str, expected: str, report: _Report, required: bool = True) -> Any:
    """A file path (non-empty string); absent is a problem only when ``required``."""
    value = table.get(name, _MISSING if required else None)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        report.bad(_join(key, name), expected, value)
        return ""
    return value


def _choice(table: dict[str, Any], name: str, key: str, choices: Sequence[str], report: _Report) -> str:
    """One of ``choices`` (the first is the default)."""
    value = table.get(name, choices[0])
    if value not in choices or not isinstance(value, str):
        report.bad(_join(key, name), "one of " + ", ".join(f'"{choice}"' for choice in choices), value)
        return choices[0]
    return value


def _sni(value: Any, key: str, report: _Report) -> tuple[SNIConfig, ...]:
    """The ``[[listeners.sni]]`` tables: distinct server names, each with its own certificate."""
    if not isinstance(value, list):
        report.bad(key, "an array of tables ([[listeners.sni]])", value)
        return ()
    entries: list[SNIConfig] = []
    seen: set[str] = set()
    for index, item in enumerate(value):
        table = _table(item, f"{key}[{index}]", _SNI_KEYS, report)
        if table is None:
            continue
        name = table.get("server_name", _MISSING)
        if not isinstance(name, str) or not _SERVER_NAME.fullmatch(name.lower().rstrip(".")) or len(name) > 253:
            report.bad(f"{key}[{index}].server_name", 'a DNS name such as "ws.example.com" or "*.example.com"', name)
            continue
        name = name.lower().rstrip(".")
        if name in seen:
            report.add(f"{key}[{index}].server_name", "a server name not already listed", repr(name))
        seen.add(name)
        certificate = _path(table, "certificate", f"{key}[{index}]", "a PEM certificate chain file", report)
        private_key = _path(table, "private_key", f"{key}[{index}]", "a PEM private key file", report)
        entries.append(SNIConfig(name, certificate, private_key))
    return tuple(entries)


# Static file mounts


_STATIC_KEYS = ("path", "directory")
_STATIC_PATH = re.compile(r"/|(/[^/?#\s\x00-\x1f\x7f-\x9f]+)+")
_STATIC_PATH_EXPECTED = (
    'a URL path such as "/files": starting with "/", no empty, "." or ".." segments, no "?", "#" or spaces'
)


def _static_mounts(
    value: Any, endpoints: Sequence[EndpointConfig], demo_page: bool, report: _Report
) -> tuple[StaticMount, ...]:
    """The ``[[static]]`` tables; ``static = []`` (the default) serves no files."""
    if not isinstance(value, list):
        report.bad("static", "an array of tables ([[static]])", value)
        return ()
    taken = {HEALTH_PATH: "the health check", **{_trimmed(endpoint.path): "an endpoint" for endpoint in endpoints}}
    if demo_page:
        taken[DEMO_PATH] = "the demo page ([http] demo_page = true)"
    leaves = [path for path in taken if path != "/"]  # they answer for every path under them
    mounts: list[StaticMount] = []
    for index, item in enumerate(value):
        key = f"static[{index}]"
        table = _table(item, key, _STATIC_KEYS, report)
        if table is None:
            continue
        path = _static_path(table.get("path", _MISSING), f"{key}.path", taken, leaves, report)
        directory = table.get("directory", _MISSING)
        if not isinstance(directory, str) or not directory.startswith("/"):
            report.bad(f"{key}.directory", "the absolute path of a directory to serve", directory)
        elif not os.path.isdir(directory):
            report.bad(f"{key}.directory", "an existing directory", directory)
        elif path is not None:
            taken[path] = f"{key}.path"
            mounts.append(StaticMount(path, directory))
    return tuple(mounts)


def _trimmed(path: str) -> str:
    """A path without its trailing "/" ("/" stays "/")."""
    return path.rstrip("/") or "/"


def _static_path(value: Any, key: str, taken: Mapping[str, str], leaves: Sequence[str], report: _Report) -> str | None:
    """A mount path (a trailing "/" is dropped) that no endpoint, page or other mount owns."""
    if not isinstance(value, str):
        report.bad(key, _STATIC_PATH_EXPECTED, value)
        return None
    path = _trimmed(value)
    segments = path.split("/")[1:]
    if not _STATIC_PATH.fullmatch(path) or any(segment in (".", "..") for segment in segments):
        report.bad(key, _STATIC_PATH_EXPECTED, value)
        return None
    if path in taken:
        report.add(key, f"a path not already used by {taken[path]}", repr(value))
        return None
    for leaf in leaves:
        if path.startswith(leaf + "/"):
            report.add(
                key, f"a path outside {leaf} ({taken[leaf]}), which answers for everything under it", repr(value)
            )
            return None
    return path
