"""The daemon's /metrics as build_service assembles it (no socket: the service is built, never started)."""

from __future__ import annotations

import pytest
from twisted.internet.testing import MemoryReactorClock

from tests.test_lifecycle import PLAIN, Daemon
from tests.test_service import build, problems_of
from wsdaemon.config import ConfigError, parse_config
from wsdaemon.plugins import discover_handlers
from wsdaemon.service import ListenerService, build_service


@pytest.fixture
def handlers():
    return discover_handlers()


def test_unparsable_metrics_listen_is_a_config_error(handlers):
    """A [metrics] listen string Twisted cannot parse is reported at metrics.listen, with the bad value."""
    with pytest.raises(ConfigError) as raised:
        build('[metrics]\nenabled = true\nlisten = "carrier-pigeon:9100"\n', handlers)
    found = problems_of(raised.value)
    assert list(found) == ["metrics.listen"]
    assert "carrier-pigeon:9100" in found["metrics.listen"]


def test_metrics_listen_adds_a_listener_of_its_own(handlers):
    """With listen set, the daemon has one more listening service, named after it."""
    config = parse_config('[metrics]\nenabled = true\nlisten = "tcp:0:interface=127.0.0.1"\n', "test.toml")
    service = build_service(config, handlers, MemoryReactorClock())
    names = [child.description for child in service if isinstance(child, ListenerService)]
    assert names == ["tcp:8080:interface=127.0.0.1", "metrics tcp:0:interface=127.0.0.1"]


def test_a_worker_never_opens_metrics_listen(handlers):
    """A worker (share_metrics given) leaves [metrics] listen to the main process."""
    config = parse_config('[metrics]\nenabled = true\nlisten = "tcp:0:interface=127.0.0.1"\n', "test.toml")
    service = build_service(config, handlers, MemoryReactorClock(), share_metrics=lambda snapshot: None)  # type: ignore[arg-type,return-value]
    assert [child.description for child in service if isinstance(child, ListenerService)] == [
        "tcp:8080:interface=127.0.0.1"
    ]


def test_an_endpoints_counts_survive_a_reload():
    """After SIGHUP rebuilds the tree, the endpoint's new resource counts on in the same stats."""
    echo = '[[endpoints]]\npath = "/echo"\nhandler = "echo"\n'
    daemon = Daemon(PLAIN + echo, reload_text=[PLAIN + "[limits]\nmax_connections = 7\n" + echo]).start()
    before = daemon.runtime.root.children[b"echo"]
    before.stats.refused(503)
    assert daemon.lifecycle.reload()
    after = daemon.runtime.root.children[b"echo"]
    assert after is not before and after.stats is before.stats
    assert dict(after.stats.handshakes) == {"503": 1}
