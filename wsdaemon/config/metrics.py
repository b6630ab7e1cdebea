"""The ``[metrics]`` table: whether ``/metrics`` is served, to whom, and where."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from typing import Any

from wsdaemon.config.checks import Report, checked_table, string_list
from wsdaemon.config.model import METRICS_PATH, EndpointConfig, MetricsConfig

_METRICS_KEYS = ("enabled", "allowed_networks", "listen")
_NETWORK_EXPECTED = 'a network in CIDR notation, such as "10.0.0.0/8" or "::1/128" (host bits zero)'


def _is_network(text: str) -> bool:
    try:
        ipaddress.ip_network(text)
    except ValueError:
        return False
    return True


def parse_metrics(value: Any, endpoints: Sequence[EndpointConfig], report: Report) -> MetricsConfig:
    """The ``[metrics]`` table; absent, metrics are off."""
    if value is None:
        return MetricsConfig()
    table = checked_table(value, "metrics", _METRICS_KEYS, report)
    if table is None:
        return MetricsConfig()
    enabled = table.get("enabled", False)
    if not isinstance(enabled, bool):
        report.bad("metrics.enabled", "true or false", enabled)
        enabled = False
    networks = MetricsConfig.allowed_networks
    if "allowed_networks" in table:
        networks = string_list(
            table["allowed_networks"], "metrics.allowed_networks", _is_network, _NETWORK_EXPECTED, report
        )
        networks = tuple(item for item in networks if _is_network(item))
    listen = table.get("listen")
    if listen is not None and (not isinstance(listen, str) or not listen.strip()):
        report.bad("metrics.listen", "a Twisted server endpoint string such as tcp:9100:interface=127.0.0.1", listen)
        listen = None
    if enabled and listen is None:
        for index, endpoint in enumerate(endpoints):
            if endpoint.path == METRICS_PATH or endpoint.path.startswith(METRICS_PATH + "/"):
                report.add(
                    f"endpoints[{index}].path",
                    f"a path other than {METRICS_PATH} while [metrics] is served on the listeners (or set metrics.listen)",
                    repr(endpoint.path),
                )
    return MetricsConfig(enabled, networks, listen)
