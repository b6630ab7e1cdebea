"""Reading a configuration: the file, the TOML document over the defaults, and ``--listen``."""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Sequence
from typing import Any

from wsdaemon.allocator import DEFAULT_CACHE_BYTES, DEFAULT_RELEASE_AFTER_CLOSED, MAX_CACHE_BYTES, MIN_CACHE_BYTES
from wsdaemon.config.broker import parse_api, parse_broker
from wsdaemon.config.checks import Report, checked_table
from wsdaemon.config.endpoints import default_endpoints, parse_endpoints
from wsdaemon.config.limits import LIMIT_KEYS, parse_limits
from wsdaemon.config.listeners import endpoint_strings, parse_listeners
from wsdaemon.config.metrics import parse_metrics
from wsdaemon.config.model import DEFAULT_LISTEN, Config, ConfigError, ListenerConfig, Problem
from wsdaemon.config.process import parse_process, refuse_unshared_listeners
from wsdaemon.config.proxy import parse_proxy
from wsdaemon.config.static import static_mounts
from wsdaemon.core.limits import Limits

_TOP_KEYS = (
    "listeners",
    "http",
    "limits",
    "endpoints",
    "static",
    "memory",
    "process",
    "broker",
    "api",
    "metrics",
    "proxy",
)
_HTTP_KEYS = ("demo_page",)
_MEMORY_KEYS = ("allocator_cache_bytes", "release_after_closed_connections")


def default_config() -> Config:
    """The configuration used when no file is given: an echo endpoint on localhost."""
    limits = Limits()
    return Config(None, (ListenerConfig(DEFAULT_LISTEN),), limits, default_endpoints(limits), True)


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
    report = Report()
    config = _with_listen_override(_build_config(document, source, report), listen_override, report)
    api = parse_api(document.get("api"), config.endpoints, config.listeners, config.demo_page, report)
    metrics = parse_metrics(document.get("metrics"), config.endpoints, report)
    config = dataclasses.replace(
        config,
        broker=parse_broker(document.get("broker"), report),
        api=api,
        metrics=metrics,
        proxy=parse_proxy(document.get("proxy"), report),
    )
    refuse_unshared_listeners(config.process, config.listeners, bool(listen_override), report)
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


def _with_listen_override(config: Config, listen_override: Sequence[str], report: Report) -> Config:
    """Apply ``--listen`` values, which win over the file's listeners (the file is still checked)."""
    if not listen_override:
        return config
    listeners = endpoint_strings([(f"--listen[{i}]", value) for i, value in enumerate(listen_override)], report)
    return dataclasses.replace(config, listeners=listeners)


def _build_config(document: dict[str, Any], source: str, report: Report) -> Config:
    """Overlay the document on the defaults, reporting every problem on the way."""
    checked_table(document, "", _TOP_KEYS, report)
    demo_page = _http(document.get("http"), report)
    limits = parse_limits(document.get("limits"), "limits", Limits(), LIMIT_KEYS, report)
    listeners: tuple[ListenerConfig, ...] = (ListenerConfig(DEFAULT_LISTEN),)
    if "listeners" in document:
        listeners = parse_listeners(document["listeners"], report)
    endpoints = default_endpoints(limits)
    if "endpoints" in document:
        endpoints = parse_endpoints(document["endpoints"], limits, demo_page, report)
    static = static_mounts(document.get("static", []), endpoints, demo_page, report)
    process = parse_process(document.get("process"), report)
    cache, release_after = _memory(document.get("memory"), report)
    return Config(
        source,
        listeners,
        limits,
        endpoints,
        demo_page,
        static,
        cache,
        process,
        release_after_closed_connections=release_after,
    )


def _http(value: Any, report: Report) -> bool:
    """The ``[http]`` table: whether to serve the demo page."""
    table = {} if value is None else checked_table(value, "http", _HTTP_KEYS, report) or {}
    demo_page = table.get("demo_page", True)
    if not isinstance(demo_page, bool):
        report.bad("http.demo_page", "true or false", demo_page)
        return True
    return demo_page


def _memory(value: Any, report: Report) -> tuple[int, int]:
    """The ``[memory]`` table: the freed memory the allocator keeps, and when it is handed back after closes."""
    table = {} if value is None else checked_table(value, "memory", _MEMORY_KEYS, report) or {}
    cache = table.get("allocator_cache_bytes", DEFAULT_CACHE_BYTES)
    if type(cache) is not int or not (cache == 0 or MIN_CACHE_BYTES <= cache <= MAX_CACHE_BYTES):
        report.bad(
            "memory.allocator_cache_bytes", f"0 or an integer from {MIN_CACHE_BYTES} to {MAX_CACHE_BYTES}", cache
        )
        cache = DEFAULT_CACHE_BYTES
    release_after = table.get("release_after_closed_connections", DEFAULT_RELEASE_AFTER_CLOSED)
    if type(release_after) is not int or release_after < 0:
        report.bad("memory.release_after_closed_connections", "0 (never) or a positive integer", release_after)
        release_after = DEFAULT_RELEASE_AFTER_CLOSED
    return cache, release_after
