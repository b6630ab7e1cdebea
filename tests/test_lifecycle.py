"""The daemon's lifecycle (wsdaemon.lifecycle, wsdaemon.reload): READY, SIGTERM, SIGHUP reload, watchdog, STATUS.

The service is built by ``build_service`` on a ``MemoryReactorClock``; signals are recorded
instead of installed, sd_notify goes to a recorder, and time is ``clock.advance``.
"""

from __future__ import annotations

import dataclasses
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from twisted.internet.address import IPv4Address
from twisted.internet.defer import fail
from twisted.internet.error import CannotListenError
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.logger import LogLevel, formatEvent, globalLogPublisher

from tests.adapter.recording import RecordingFactory
from tests.certs import ThrowawayCA
from tests.test_systemd import Recorder
from wsdaemon.config import ConfigError, Problem, parse_config
from wsdaemon.lifecycle import STATUS_INTERVAL_SECONDS
from wsdaemon.plugins import discover_handlers
from wsdaemon.runtime import Runtime
from wsdaemon.service import ListenerService, build_service
from wsdaemon.systemd import Notifier
from wsdaemon.tls import ServerTLS


class Clock(MemoryReactorClock):
    """A memory reactor whose callFromThread runs at once (signal handlers use it)."""

    def callFromThread(self, function: Any, *args: Any, **kwargs: Any) -> None:
        function(*args, **kwargs)


class FakePlugin:
    """A handler plugin whose factories record; its one option is "room"."""

    options: ClassVar[dict[str, str]] = {"room": "any string"}

    def buildFactory(self, options: Any, path: str) -> RecordingFactory:
        return RecordingFactory()


class Daemon:
    """A built daemon service with its lifecycle child wired to recorders."""

    def __init__(
        self,
        text: str,
        *,
        environ: dict[str, str] | None = None,
        reload_text: list[str] | None = None,
        handlers: Any = None,
    ) -> None:
        self.clock = Clock()
        self.sent = Recorder()
        self.reload_text = reload_text if reload_text is not None else [text]
        self.service = build_service(
            parse_config(text, "test.toml"),
            handlers or discover_handlers(),
            self.clock,
            load_config=lambda: parse_config(self.reload_text[0], "test.toml"),
            notifier=Notifier("@test", self.sent),
        )
        self.lifecycle = self.service.lifecycle
        self.signals: dict[int, Any] = {}
        self.lifecycle.install_signal = self._install
        self.lifecycle.environ = environ or {}

    def _install(self, number: int, handler: Any) -> Any:
        previous = self.signals.get(number, signal.SIG_DFL)
        self.signals[number] = handler
        return previous

    def start(self) -> Daemon:
        """startService, then the reactor runs (its when-running hooks fire)."""
        self.service.startService()
        self.clock.run()
        return self

    def messages(self) -> list[list[str]]:
        """The sd_notify messages so far, each as its lines."""
        return [lines for lines, _ in self.sent.sent]

    def first_fields(self) -> list[str]:
        """The first line of each message (READY=1, RELOADING=1, STATUS=...)."""
        return [lines[0] for lines in self.messages()]

    @property
    def runtime(self) -> Runtime:
        """The running Runtime (config, handler factories, resource tree)."""
        return self.service.runtime.current

    def tls(self) -> ServerTLS:
        """The certificates of the one TLS listener."""
        (tls,) = self.lifecycle.reloader.tls.values()
        return tls

    def connect(self, port: int = 5000) -> Any:
        """Accept one (HTTP) connection on the shared factory."""
        factory = self.service.factory
        protocol = factory.buildProtocol(IPv4Address("TCP", "192.0.2.1", port))
        protocol.makeConnection(StringTransport(peerAddress=IPv4Address("TCP", "192.0.2.1", port)))
        return protocol


@pytest.fixture
def logged() -> Iterator[list[dict[str, Any]]]:
    """Every log event emitted during the test."""
    events: list[dict[str, Any]] = []
    globalLogPublisher.addObserver(events.append)
    yield events
    globalLogPublisher.removeObserver(events.append)


def texts(events: list[dict[str, Any]], level: LogLevel | None = None) -> list[str]:
    return [formatEvent(event) for event in events if level is None or event.get("log_level") == level]


PLAIN = '[[listeners]]\nendpoint = "tcp:8080:interface=127.0.0.1"\n'


# --- readiness -------------------------------------------------------------------------------


def test_ready_is_sent_once_the_reactor_runs_and_every_listener_listens():
    """READY=1 (with a STATUS line) comes after startup, not while the service is only built or started."""
    daemon = Daemon(PLAIN)
    daemon.service.startService()
    assert daemon.messages() == []
    daemon.clock.run()
    assert daemon.messages() == [["READY=1", "STATUS=0 connections (0 WebSocket) on 1 listeners"]]


def test_no_ready_when_a_listener_fails():
    """If a listener cannot listen (the daemon is about to exit 1), READY=1 is never sent."""
    daemon = Daemon(PLAIN)
    listener = next(child for child in daemon.service if isinstance(child, ListenerService))
    listener.endpoint = type(
        "Failing", (), {"listen": lambda self, factory: fail(CannotListenError("127.0.0.1", 8080, OSError("in use")))}
    )()
    daemon.start()
    assert "READY=1" not in daemon.first_fields()


def test_signals_are_taken_once_the_reactor_runs():
    """SIGTERM and SIGHUP get the daemon's handlers when the reactor runs (after Twisted installed its own)."""
    daemon = Daemon(PLAIN)
    daemon.service.startService()
    assert daemon.signals == {}
    daemon.clock.run()
    assert set(daemon.signals) == {signal.SIGTERM, signal.SIGHUP}


def test_sighup_while_draining_is_ignored():
    """Once stopping, the handlers stay ours: a SIGHUP neither reloads nor kills the draining process."""
    daemon = Daemon(PLAIN).start()
    daemon.service.stopService()
    daemon.signals[signal.SIGHUP](signal.SIGHUP, None)
    assert "RELOADING=1" not in daemon.first_fields()


# --- SIGTERM ---------------------------------------------------------------------------------


def test_sigterm_says_stopping_and_stops_the_reactor():
    """SIGTERM sends STOPPING=1 and stops the reactor (whose shutdown drains), without an exit signal."""
    daemon = Daemon(PLAIN).start()
    daemon.signals[signal.SIGTERM](signal.SIGTERM, None)
    assert daemon.first_fields()[-1] == "STOPPING=1"
    assert daemon.clock.hasStopped
    assert getattr(daemon.clock, "_exitSignal", None) is None


def test_second_sigterm_does_nothing_more():
    """A repeated SIGTERM while draining sends no second STOPPING=1."""
    daemon = Daemon(PLAIN).start()
    daemon.signals[signal.SIGTERM](signal.SIGTERM, None)
    daemon.signals[signal.SIGTERM](signal.SIGTERM, None)
    assert daemon.first_fields().count("STOPPING=1") == 1


def test_stop_without_sigterm_still_says_stopping():
    """Any shutdown (SIGINT, reactor.stop) sends STOPPING=1 once, from stopService."""
    daemon = Daemon(PLAIN).start()
    daemon.service.stopService()
    assert daemon.first_fields().count("STOPPING=1") == 1


# --- watchdog and status ---------------------------------------------------------------------


def test_watchdog_pings_at_half_the_watchdog_timeout():
    """With WATCHDOG_USEC=10 s, WATCHDOG=1 is sent at once and then every 5 s from the reactor."""
    daemon = Daemon(PLAIN, environ={"WATCHDOG_USEC": "10000000"}).start()
    assert daemon.first_fields().count("WATCHDOG=1") == 1
    daemon.clock.advance(4.9)
    assert daemon.first_fields().count("WATCHDOG=1") == 1
    daemon.clock.advance(0.1)
    daemon.clock.advance(5)
    assert daemon.first_fields().count("WATCHDOG=1") == 3


def test_no_watchdog_without_watchdog_usec():
    """Without WatchdogSec no WATCHDOG=1 is sent."""
    daemon = Daemon(PLAIN).start()
    daemon.clock.advance(60)
    assert "WATCHDOG=1" not in daemon.first_fields()


def test_watchdog_stops_with_the_service():
    """After stopService the watchdog timer is gone (a stopping daemon must not look alive forever)."""
    daemon = Daemon(PLAIN, environ={"WATCHDOG_USEC": "2000000"}).start()
    daemon.service.stopService()
    count = daemon.first_fields().count("WATCHDOG=1")
    daemon.clock.advance(10)
    assert daemon.first_fields().count("WATCHDOG=1") == count


def test_status_follows_the_connection_count():
    """STATUS= is refreshed when the number of connections changed (and only then)."""
    daemon = Daemon(PLAIN).start()
    daemon.connect()
    daemon.clock.advance(STATUS_INTERVAL_SECONDS)
    assert daemon.messages()[-1] == ["STATUS=1 connections (0 WebSocket) on 1 listeners"]
    before = len(daemon.messages())
    daemon.clock.advance(STATUS_INTERVAL_SECONDS)
    assert len(daemon.messages()) == before


# --- SIGHUP reload ---------------------------------------------------------------------------


def test_sighup_reloads_between_reloading_and_ready():
    """SIGHUP sends RELOADING=1, applies the new limits, then READY=1."""
    daemon = Daemon(PLAIN, reload_text=[PLAIN + "[limits]\nmax_connections = 7\n"]).start()
    daemon.signals[signal.SIGHUP](signal.SIGHUP, None)
    assert daemon.first_fields()[-2:] == ["RELOADING=1", "READY=1"]
    assert daemon.service.factory.limits.max_connections == 7
    assert daemon.service.factory.wrappedFactory.limits.max_connections == 7


def test_allocator_cache_applies_at_start_and_on_reload(monkeypatch: pytest.MonkeyPatch):
    """[memory] allocator_cache_bytes is handed to the allocator when the service starts and on reload."""
    sizes: list[int] = []
    monkeypatch.setattr("wsdaemon.runtime.keep_freed_memory", sizes.append)
    daemon = Daemon(PLAIN + "[memory]\nallocator_cache_bytes = 0\n", reload_text=[PLAIN]).start()
    assert sizes == [0]
    assert daemon.lifecycle.reload()
    assert sizes == [0, 16 * 2**20]


def test_the_heap_is_settled_before_ready_and_after_each_reload():
    """The heap policy runs once the daemon serves (before READY=1) and after each reload, never while only built."""
    daemon = Daemon(PLAIN, reload_text=[PLAIN])
    settled: list[list[str]] = []
    daemon.lifecycle.settle_heap = lambda: settled.append(daemon.first_fields())
    daemon.service.startService()
    assert settled == []
    daemon.clock.run()
    assert settled == [[]], "settled before READY=1 went out"
    assert daemon.lifecycle.reload()
    assert settled[-1] == ["READY=1", "RELOADING=1"], "settled after the new runtime, before READY=1"


def test_reload_applies_drain_timeout_and_endpoint_limits(logged):
    """The drain timeout and per-endpoint limits of the new file apply after a reload."""
    new = (
        PLAIN
        + '[limits]\ndrain_timeout_seconds = 3.0\n[[endpoints]]\npath = "/echo"\nhandler = "echo"\n[endpoints.limits]\nmax_message_bytes = 10\n'
    )
    daemon = Daemon(PLAIN, reload_text=[new]).start()
    assert daemon.lifecycle.reload()
    assert daemon.runtime.root.children[b"echo"].limits.max_message_bytes == 10
    daemon.connect()  # a connection that never goes away: the drain must give up on it
    daemon.service.stopService()
    daemon.clock.advance(2.9)
    assert not any("drain timeout" in text for text in texts(logged))
    daemon.clock.advance(0.1)
    assert any("drain timeout: aborting 1 connections" in text for text in texts(logged, LogLevel.warn))


def test_reload_adds_an_endpoint():
    """A new [[endpoints]] entry is served after a reload."""
    new = PLAIN + '[[endpoints]]\npath = "/echo"\nhandler = "echo"\n[[endpoints]]\npath = "/more"\nhandler = "echo"\n'
    daemon = Daemon(PLAIN, reload_text=[new]).start()
    daemon.lifecycle.reload()
    assert b"more" in daemon.runtime.root.children


def test_broken_config_on_reload_keeps_everything(logged):
    """A reload that finds a bad file changes nothing, logs why, and still answers READY=1."""
    daemon = Daemon(PLAIN + "[limits]\nmax_connections = 5\n", reload_text=["[limits]\nmax_connections = -1\n"]).start()
    assert not daemon.lifecycle.reload()
    assert daemon.service.factory.limits.max_connections == 5
    assert daemon.first_fields()[-1] == "READY=1"
    assert "last reload failed" in daemon.messages()[-1][1]
    assert any(
        "configuration refused" in text and "limits.max_connections" in text for text in texts(logged, LogLevel.error)
    )


def test_changed_listeners_are_logged_as_needing_a_restart(logged):
    """A reload whose listeners differ keeps listening where it did and logs that a restart is needed."""
    daemon = Daemon(PLAIN, reload_text=['[[listeners]]\nendpoint = "tcp:9999"\n']).start()
    daemon.lifecycle.reload()
    assert any("needs a restart" in text for text in texts(logged, LogLevel.warn))
    assert [listener.endpoint for listener in daemon.runtime.config.listeners] == ["tcp:8080:interface=127.0.0.1"]


def test_unchanged_handler_keeps_its_factory_and_changed_one_gets_a_new_one():
    """Handlers whose options did not change keep their factory (and shared state); changed ones are rebuilt."""
    endpoints = '[[endpoints]]\npath = "/a"\nhandler = "fake"\n[[endpoints]]\npath = "/b"\nhandler = "fake"\n[endpoints.options]\nroom = "{}"\n'
    daemon = Daemon(
        PLAIN + endpoints.format("x"), reload_text=[PLAIN + endpoints.format("y")], handlers={"fake": FakePlugin()}
    )
    daemon.start()
    children = daemon.runtime.root.children
    before = {path: children[path].factory for path in (b"a", b"b")}
    daemon.lifecycle.reload()
    children = daemon.runtime.root.children
    assert children[b"a"].factory is before[b"a"]
    assert children[b"b"].factory is not before[b"b"]


def test_bad_handler_options_on_reload_keep_the_running_endpoints(logged):
    """An unknown handler in the reloaded file is refused and the running site stays as it was."""
    daemon = Daemon(PLAIN, reload_text=[PLAIN + '[[endpoints]]\npath = "/x"\nhandler = "nonexistent"\n']).start()
    runtime = daemon.runtime
    assert not daemon.lifecycle.reload()
    assert daemon.runtime is runtime
    assert any("endpoints refused" in text for text in texts(logged, LogLevel.error))


# --- certificates ----------------------------------------------------------------------------


def tls_config(ca: ThrowawayCA, stem: str = "server", days: float = 90) -> tuple[str, Any]:
    issued = ca.issue("localhost", ("localhost",), stem=stem, days=days)
    text = f'[[listeners]]\nendpoint = "tcp:8443:interface=127.0.0.1"\ntls = true\ncertificate = "{issued.cert_path}"\nprivate_key = "{issued.key_path}"\n'
    return text, issued


def test_reload_rereads_renewed_certificates(tmp_path: Path, logged):
    """SIGHUP after a renewal serves the new certificate (and logs what it serves now)."""
    ca = ThrowawayCA(tmp_path)
    text, issued = tls_config(ca)
    daemon = Daemon(text).start()
    renewed = ca.issue("localhost", ("localhost",), stem="renewed")
    issued.cert_path.write_bytes(renewed.cert_path.read_bytes())
    issued.key_path.write_bytes(renewed.key_path.read_bytes())
    assert daemon.lifecycle.reload()
    assert daemon.tls().served[0].not_after == renewed.certificate.not_valid_after_utc
    assert any("now serves" in text for text in texts(logged, LogLevel.info))


def test_broken_certificate_on_reload_is_refused_with_a_clear_line(tmp_path: Path, logged):
    """A broken renewed certificate is refused: an error names the listener, and the old one is kept."""
    ca = ThrowawayCA(tmp_path)
    text, issued = tls_config(ca)
    daemon = Daemon(text).start()
    tls = daemon.tls()
    served = tls.served
    issued.cert_path.write_text("garbage\n")
    assert not daemon.lifecycle.reload()
    assert tls.served == served
    (error,) = [line for line in texts(logged, LogLevel.error) if "refused" in line]
    assert "tcp:8443:interface=127.0.0.1" in error and "still serving the old one" in error and "certificate" in error


def test_expiring_certificate_warns_at_start_and_on_reload(tmp_path: Path, logged):
    """A certificate with fewer than 14 days left is warned about at start and again on reload."""
    text, _ = tls_config(ThrowawayCA(tmp_path), days=3)
    daemon = Daemon(text).start()
    assert sum("expires on" in line for line in texts(logged, LogLevel.warn)) == 1
    daemon.lifecycle.reload()
    assert sum("expires on" in line for line in texts(logged, LogLevel.warn)) == 2


def test_reload_uses_new_certificate_paths_from_the_config(tmp_path: Path):
    """When the reloaded file names other certificate files, the listener switches to them."""
    ca = ThrowawayCA(tmp_path)
    text, _ = tls_config(ca)
    new_text, other = tls_config(ca, stem="other")
    daemon = Daemon(text, reload_text=[new_text]).start()
    daemon.lifecycle.reload()
    assert daemon.tls().settings.certificate == str(other.cert_path)


def test_reload_without_a_config_loader_rereads_certificates_only(tmp_path: Path):
    """With no config file to re-read (built-in defaults), SIGHUP still reloads the certificates."""
    ca = ThrowawayCA(tmp_path)
    text, _ = tls_config(ca)
    daemon = Daemon(text)
    daemon.lifecycle.reloader.load_config = None
    daemon.start()
    assert daemon.lifecycle.reload()


def test_config_error_from_reload_is_the_loader_report():
    """The loader's ConfigError text (file, key, expected, got) is what the reload error carries."""
    error = ConfigError("test.toml", [Problem("limits.max_connections", "an integer", "-1")])
    assert str(error).startswith("invalid configuration in test.toml:")


def test_lifecycle_keeps_a_copy_of_the_config_it_runs():
    """After a reload the running config has the new limits but the old listeners."""
    daemon = Daemon(PLAIN, reload_text=['[[listeners]]\nendpoint = "tcp:1"\n[limits]\nmax_connections = 3\n']).start()
    daemon.lifecycle.reload()
    config = daemon.runtime.config
    assert config.limits.max_connections == 3
    assert dataclasses.astuple(config.listeners[0])[0] == "tcp:8080:interface=127.0.0.1"
