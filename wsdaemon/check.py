"""``twist wsdaemon --check-config``: validate everything a start would, print the result, listen on nothing.

It loads the config, builds every handler factory (so handler options are checked), parses
every listener endpoint and loads every certificate and key, then prints the effective
listeners, endpoints and limits. Exit status 0 means a start with this config would get as
far as binding its sockets; 1 means it would not, and stderr says why, in the config
loader's words. Meant for ``ExecStartPre=`` and for CI of people's own configs.

A ``systemd:`` endpoint cannot be resolved here when systemd passes no sockets (it passes
them to ``ExecStart=`` only): its syntax is still checked, and the report says so.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

from twisted.application.service import MultiService
from twisted.internet.endpoints import serverFromString

from wsdaemon.auth.resolve import resolve_authenticators
from wsdaemon.config import (
    AUTO_WORKERS,
    METRICS_PATH,
    Config,
    ConfigError,
    ListenerConfig,
    Problem,
    ProcessConfig,
    TLSConfig,
    load_config,
    worker_count,
)
from wsdaemon.console import write_report
from wsdaemon.core.limits import Limits
from wsdaemon.handler_factories import resolve_factories
from wsdaemon.interfaces import HandlerContext
from wsdaemon.plugins import discover_authenticators
from wsdaemon.pubsub import build_api_access, build_broker
from wsdaemon.service import endpoint_problem, metrics_endpoint
from wsdaemon.tls import MODERN_CIPHERS, ServerTLS, build_listener_tls
from wsdaemon.web.site import build_factory

_NOT_PASSED = "socket passed by systemd at start (none here, so only its syntax was checked)"


def check_listeners(config: Config, reactor: Any, problems: list[Problem]) -> dict[str, str]:
    """Parse each endpoint string as a start would; systemd sockets not passed to us are only noted."""
    notes: dict[str, str] = {}
    for index, listener in enumerate(config.listeners):
        try:
            serverFromString(reactor, listener.endpoint)
        except (KeyError, IndexError) as error:
            if not listener.endpoint.startswith("systemd:"):
                problems.append(endpoint_problem(f"listeners[{index}].endpoint", listener.endpoint, error))
            notes[listener.endpoint] = _NOT_PASSED
        except Exception as error:  # noqa: BLE001 - serverFromString raises ValueError, TypeError, AttributeError...
            problems.append(endpoint_problem(f"listeners[{index}].endpoint", listener.endpoint, error))
    if config.metrics.enabled and config.metrics.listen is not None:
        metrics_endpoint(config.metrics.listen, reactor, problems)
    return notes


def _describe_tls(settings: TLSConfig) -> str:
    ciphers = "default modern ciphers" if settings.ciphers in (None, MODERN_CIPHERS) else f"ciphers {settings.ciphers}"
    return f"TLS >= {settings.min_tls_version}, {ciphers}, ALPN http/1.1, client certificates: {settings.client_certs}"


def _listener_lines(
    listener: ListenerConfig, tls: ServerTLS | None, note: str | None, now: datetime.datetime
) -> list[str]:
    kind = "plain TCP" if listener.tls is None else _describe_tls(listener.tls)
    lines = [f"  {listener.endpoint}  ({kind})"]
    if note:
        lines.append(f"    {note}")
    if tls is not None:
        for served in tls.served:
            label = "default certificate" if served.server_name is None else f"sni {served.server_name}"
            lines.append(f"    {label}: {served.describe(now)}")
        if tls.settings.client_ca:
            lines.append(f"    client CA: {tls.settings.client_ca}")
    return lines


def _limit_changes(limits: Limits, base: Limits) -> str:
    changed = [
        f"{f.name}={getattr(limits, f.name)}"
        for f in dataclasses.fields(Limits)
        if getattr(limits, f.name) != getattr(base, f.name)
    ]
    return ", ".join(changed)


def _broker_lines(config: Config) -> list[str]:
    """Where channels live, and the API (never the secrets, only where they are read from)."""
    broker = config.broker
    if broker is None and worker_count(config.process) > 1:
        lines = ["broker: the main process relays channels between its workers (this host only)"]
    elif broker is None:
        lines = ["broker: in-process (channels reach this process only)"]
    else:
        password = f"password from {broker.password_file}" if broker.password_file else "no password"
        lines = [
            f"broker: {broker.url}  prefix={broker.prefix!r}  required={'true' if broker.required else 'false'}  "
            f"max_pending_messages={broker.max_pending_messages}  {password}"
        ]
    api = config.api
    if api is None:
        lines.append("api: off")
    else:
        served = ", ".join(api.listeners) or "every listener"
        lines.append(f"api: POST {api.publish_path}, GET {api.presence_path} on {served}; token from {api.token_file}")
    lines.append(_metrics_line(config))
    return lines


def _metrics_line(config: Config) -> str:
    metrics = config.metrics
    if not metrics.enabled:
        return "metrics: off"
    where = f"on {metrics.listen} only" if metrics.listen is not None else "on every listener"
    return f"metrics: GET {METRICS_PATH} {where}, to {', '.join(metrics.allowed_networks) or 'nobody'}"


def _process_line(process: ProcessConfig) -> str:
    count = worker_count(process)
    if process.workers == AUTO_WORKERS:
        workers = f'workers = "auto": {count} (one per CPU this process may run on)'
    else:
        workers = f"workers = {count}"
    if count == 1:
        return f"process: {workers}: one process serves every listener"
    return (
        f"process: {workers}: a main process holds the listeners, {count} worker processes serve them; "
        f"start_timeout_seconds = {process.start_timeout_seconds}, "
        f"heartbeat_timeout_seconds = {process.heartbeat_timeout_seconds}, "
        f"restart_delay_max_seconds = {process.restart_delay_max_seconds}, "
        f"stop_grace_seconds = {process.stop_grace_seconds}"
    )


def _proxy_line(config: Config) -> str:
    """Whose forwarding headers are believed."""
    networks = config.proxy.trusted_networks
    if not networks:
        return "proxy: trusted_networks = none (Forwarded and X-Forwarded-* are ignored)"
    listed = ", ".join(str(network) for network in networks)
    return f"proxy: trusted_networks = {listed} (their Forwarded or X-Forwarded-For names the client)"


def report(
    config: Config, tls: Mapping[str, ServerTLS], notes: Mapping[str, str], now: datetime.datetime
) -> tuple[list[str], list[str]]:
    """The printed report and the warnings (certificates near expiry, or with no DNS name)."""
    lines = [f"wsdaemon: configuration OK: {config.source or '(built-in defaults)'}", "listeners:"]
    for listener in config.listeners:
        lines.extend(_listener_lines(listener, tls.get(listener.endpoint), notes.get(listener.endpoint), now))
    lines.append(f"http: demo_page = {'true' if config.demo_page else 'false'}; /healthz")
    lines.append("endpoints:")
    for endpoint in config.endpoints:
        origins = ", ".join(endpoint.allowed_origins) or "same origin as Host"
        lines.append(
            f"  {endpoint.path}  handler={endpoint.handler}  subprotocols=[{', '.join(endpoint.subprotocols)}]  origins={origins}"
        )
        if endpoint.options:
            lines.append(f"    options: {dict(endpoint.options)}")
        if endpoint.auth.type != "none":
            expiry = "; closes with 1008 when it expires" if endpoint.auth.close_on_expiry else ""
            lines.append(f"    auth: {endpoint.auth.type} {dict(endpoint.auth.options)}{expiry}")
        changes = _limit_changes(endpoint.limits, config.limits)
        if changes:
            lines.append(f"    limits: {changes}")
        if endpoint.message_rate is not None:
            rate = endpoint.message_rate
            lines.append(f"    message_rate: {rate.rate:g}/s, burst {rate.burst}; over it -> close 1008")
    lines.append("limits:")
    lines.extend(f"  {f.name} = {getattr(config.limits, f.name)}" for f in dataclasses.fields(Limits))
    lines.append(
        f"memory: allocator_cache_bytes = {config.allocator_cache_bytes},"
        f" release_after_closed_connections = {config.release_after_closed_connections}"
    )
    lines.append(_proxy_line(config))
    lines.extend(_broker_lines(config))
    lines.append(_process_line(config.process))
    warnings = [
        f"{endpoint}: {line}"
        for endpoint, server in tls.items()
        for line in (*server.name_warnings(), *server.expiry_warnings(now))
    ]
    return lines, warnings


def check_config(
    path: str | None,
    listen: Sequence[str],
    handlers: Mapping[str, Any],
    reactor: Any,
    out: TextIO,
    err: TextIO,
    now: datetime.datetime | None = None,
    authenticators: Mapping[str, Any] | None = None,
) -> int:
    """Validate like a start (key files read too), print the effective settings to ``out``; the exit status."""
    try:
        config = load_config(path, listen)
    except ConfigError as error:
        print(f"wsdaemon: {error}", file=err)
        return 1
    problems: list[Problem] = []
    broker = build_broker(config, reactor, problems)
    context = HandlerContext(reactor, MultiService(), broker)
    factories = resolve_factories(config, handlers, context, problems)
    plugins = discover_authenticators() if authenticators is None else authenticators
    guards = resolve_authenticators(config, plugins, context, problems)
    build_api_access(config, [], problems)
    notes = check_listeners(config, reactor, problems)
    tls = build_listener_tls(config, problems)
    if problems:
        print(f"wsdaemon: {ConfigError(config.source or '(built-in defaults and --listen)', problems)}", file=err)
        return 1
    build_factory(
        config, factories, reactor, authenticators=guards
    )  # the site tree builds: nothing else left to fail before listening
    lines, warnings = report(config, tls, notes, now or datetime.datetime.now(datetime.UTC))
    write_report("\n".join(lines), out)
    for warning in warnings:
        print(f"wsdaemon: warning: {warning}", file=err)
    return 0
