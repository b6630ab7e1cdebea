"""The ``[metrics]`` table: defaults, values, and errors that name file, key, expected and got."""

from __future__ import annotations

import pytest

from wsdaemon.config import ConfigError, MetricsConfig, parse_config

SOURCE = "/etc/wsdaemon/wsdaemon.toml"


def problems(text: str) -> list[tuple[str, str, str]]:
    with pytest.raises(ConfigError) as raised:
        parse_config(text, SOURCE)
    assert raised.value.source == SOURCE
    return [(problem.key, problem.expected, problem.got) for problem in raised.value.problems]


def test_metrics_are_off_and_loopback_only_by_default():
    """Without [metrics]: disabled, allowed_networks loopback, no listener of its own."""
    assert parse_config("", SOURCE).metrics == MetricsConfig(False, ("127.0.0.0/8", "::1/128"), None)


def test_metrics_table_sets_every_key():
    """enabled, allowed_networks and listen are read as written."""
    config = parse_config(
        '[metrics]\nenabled = true\nallowed_networks = ["10.0.0.0/8"]\nlisten = "tcp:9100:interface=127.0.0.1"\n',
        SOURCE,
    )
    assert config.metrics == MetricsConfig(True, ("10.0.0.0/8",), "tcp:9100:interface=127.0.0.1")


def test_bad_metrics_values_are_all_reported():
    """Every bad key is reported at once, each with what was expected and what was found."""
    found = problems(
        '[metrics]\nenabled = "yes"\nallowed_networks = ["10.0.0.1/8", "nonsense"]\nlisten = 9100\nport = 1\n'
    )
    keys = [key for key, _, _ in found]
    assert keys == [
        "metrics.port",
        "metrics.enabled",
        "metrics.allowed_networks[0]",
        "metrics.allowed_networks[1]",
        "metrics.listen",
    ]
    assert found[1][1:] == ("true or false", "'yes'")
    assert "CIDR" in found[2][1] and found[2][2] == "'10.0.0.1/8'"
    assert found[4][2] == "9100"


def test_an_endpoint_at_metrics_conflicts_when_metrics_are_on_the_listeners():
    """An endpoint at /metrics is refused while /metrics is served on the listeners, allowed with listen."""
    endpoint = '[[endpoints]]\npath = "/metrics"\nhandler = "echo"\n'
    found = problems("[metrics]\nenabled = true\n" + endpoint)
    assert [key for key, _, _ in found] == ["endpoints[0].path"]
    listen = '[metrics]\nenabled = true\nlisten = "tcp:9100"\n'
    assert parse_config(listen + endpoint, SOURCE).endpoints[0].path == "/metrics"
