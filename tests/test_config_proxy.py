"""Tests for the ``[proxy]`` table (wsdaemon.config.proxy): which peers may name the client."""

from __future__ import annotations

from ipaddress import ip_network

import pytest

from tests.test_config import SOURCE, assert_reported, config_error
from wsdaemon.config import ProxyConfig, default_config, parse_config


def test_nobody_is_trusted_by_default() -> None:
    """Without [proxy], no network is trusted, so forwarding headers are ignored."""
    assert default_config().proxy == ProxyConfig(())
    assert parse_config("[proxy]\n", SOURCE).proxy == ProxyConfig(())


def test_trusted_networks_are_parsed_in_order() -> None:
    """Networks and single addresses, IPv4 and IPv6, become ip_network values."""
    config = parse_config('[proxy]\ntrusted_networks = ["10.0.0.0/8", "192.0.2.1", "fd00::/8"]\n', SOURCE)
    assert config.proxy.trusted_networks == (
        ip_network("10.0.0.0/8"),
        ip_network("192.0.2.1/32"),
        ip_network("fd00::/8"),
    )


@pytest.mark.parametrize(
    ("value", "key", "expected"),
    [
        ('"10.0.0.0/8"', "proxy.trusted_networks", "a list of at most 1024 networks"),
        ('["10.0.0.1/8"]', "proxy.trusted_networks[0]", "has host bits set"),
        ('["10.0.0.0/8", "proxy.example"]', "proxy.trusted_networks[1]", "an IP network such as 10.0.0.0/8"),
        ("[8]", "proxy.trusted_networks[0]", "not a string"),
    ],
)
def test_bad_trusted_networks_are_reported(value: str, key: str, expected: str) -> None:
    """A network that is not one (or is not written as one) names its key, what was expected and got."""
    assert_reported(config_error(f"[proxy]\ntrusted_networks = {value}\n"), key, expected)


def test_unknown_proxy_key_is_reported_with_a_suggestion() -> None:
    """A misspelt key in [proxy] is reported with the nearest known one."""
    assert_reported(
        config_error('[proxy]\ntrusted_network = ["10.0.0.0/8"]\n'), "proxy.trusted_network", "trusted_networks"
    )
