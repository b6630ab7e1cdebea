"""The ``[[listeners]]`` tables: endpoint strings, and TLS with its SNI certificates on top.

No Twisted here: endpoint strings are only checked for being non-empty strings; Twisted parses
them when the service is built.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from wsdaemon.config.checks import MISSING, Report, array_of_tables, checked_table, choice, file_path
from wsdaemon.config.model import ListenerConfig, SNIConfig, TLSConfig

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
_LISTEN_EXPECTED = 'a Twisted server endpoint string such as "tcp:8080:interface=127.0.0.1"'


def parse_listeners(value: Any, report: Report) -> tuple[ListenerConfig, ...]:
    """The ``[[listeners]]`` tables."""
    pairs: list[tuple[str, Any]] = []
    tls: dict[Any, TLSConfig | None] = {}
    for index, item in enumerate(array_of_tables(value, "listeners", report)):
        table = checked_table(item, f"listeners[{index}]", _LISTENER_KEYS, report)
        if table is not None:
            endpoint = table.get("endpoint", MISSING)
            pairs.append((f"listeners[{index}].endpoint", endpoint))
            settings = _listener_tls(table, f"listeners[{index}]", report)
            if isinstance(endpoint, str):
                tls.setdefault(endpoint, settings)
    return tuple(dataclasses.replace(item, tls=tls.get(item.endpoint)) for item in endpoint_strings(pairs, report))


def endpoint_strings(pairs: list[tuple[str, Any]], report: Report) -> tuple[ListenerConfig, ...]:
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


def _listener_tls(table: dict[str, Any], key: str, report: Report) -> TLSConfig | None:
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
    certificate = file_path(table, "certificate", key, "a PEM certificate chain file (leaf first)", report)
    private_key = file_path(table, "private_key", key, "a PEM private key file", report)
    client_ca = file_path(
        table, "client_ca", key, "a PEM file of the CAs that sign client certificates", report, required=False
    )
    client_certs = choice(table, "client_certs", key, _CLIENT_CERTS, report)
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
    version = choice(table, "min_tls_version", key, _TLS_VERSIONS, report)
    return TLSConfig(certificate, private_key, sni, client_ca, client_certs, version, ciphers, days)


def _sni(value: Any, key: str, report: Report) -> tuple[SNIConfig, ...]:
    """The ``[[listeners.sni]]`` tables: distinct server names, each with its own certificate."""
    if not isinstance(value, list):
        report.bad(key, "an array of tables ([[listeners.sni]])", value)
        return ()
    entries: list[SNIConfig] = []
    seen: set[str] = set()
    for index, item in enumerate(value):
        table = checked_table(item, f"{key}[{index}]", _SNI_KEYS, report)
        if table is None:
            continue
        name = table.get("server_name", MISSING)
        if not isinstance(name, str) or not _SERVER_NAME.fullmatch(name.lower().rstrip(".")) or len(name) > 253:
            report.bad(f"{key}[{index}].server_name", 'a DNS name such as "ws.example.com" or "*.example.com"', name)
            continue
        name = name.lower().rstrip(".")
        if name in seen:
            report.add(f"{key}[{index}].server_name", "a server name not already listed", repr(name))
        seen.add(name)
        certificate = file_path(table, "certificate", f"{key}[{index}]", "a PEM certificate chain file", report)
        private_key = file_path(table, "private_key", f"{key}[{index}]", "a PEM private key file", report)
        entries.append(SNIConfig(name, certificate, private_key))
    return tuple(entries)
