"""The ``[proxy]`` table: which TCP peers are reverse proxies whose forwarding headers name the client."""

from __future__ import annotations

import ipaddress
from typing import Any

from wsdaemon.config.checks import Report, checked_table
from wsdaemon.config.model import MAX_TRUSTED_NETWORKS, ProxyConfig

_PROXY_KEYS = ("trusted_networks",)
_EXPECTED = f'a list of at most {MAX_TRUSTED_NETWORKS} networks such as ["10.0.0.0/8", "192.0.2.1", "::1"]'


def parse_proxy(value: Any, report: Report) -> ProxyConfig:
    """The ``[proxy]`` table; without it nobody is trusted (forwarding headers are ignored)."""
    table = {} if value is None else checked_table(value, "proxy", _PROXY_KEYS, report) or {}
    items = table.get("trusted_networks", [])
    if not isinstance(items, list) or len(items) > MAX_TRUSTED_NETWORKS:
        report.bad("proxy.trusted_networks", _EXPECTED, items)
        return ProxyConfig()
    networks = []
    for index, item in enumerate(items):
        try:
            if not isinstance(item, str):
                raise TypeError(item)
            networks.append(ipaddress.ip_network(item.strip(), strict=True))
        except (TypeError, ValueError) as error:
            why = str(error) if isinstance(error, ValueError) else "not a string"
            report.bad(f"proxy.trusted_networks[{index}]", f"an IP network such as 10.0.0.0/8 ({why})", item)
    return ProxyConfig(tuple(networks))
