"""The running daemon's lifecycle: readiness, SIGHUP reload, SIGTERM drain, watchdog.

Rules for this file:

* Signals only schedule work on the reactor (``callFromThread``), as Twisted's own
  handlers do; everything else runs in the reactor thread.
* SIGTERM is ours, not the reactor's: it stops the reactor the same way, but
  without recording an exit signal, so ``twist`` exits 0 once the shutdown
  triggers (stop listening, close every WebSocket with 1001, wait for the
  drain) are done. The handlers are installed once the reactor runs, after
  Twisted's own, which they replace.
* A reload applies what is safe and logs the rest: certificates are swapped per
  listener (a broken one is refused, the old one stays); endpoints and limits
  apply to new connections; a handler whose options did not change keeps its
  factory (and so its shared state); listener changes need a restart.
* sd_notify: READY=1 once every listener listens; RELOADING=1 … READY=1 around a
  reload; STOPPING=1; STATUS= with the connection count; WATCHDOG=1 from a
  reactor timer at half of ``WatchdogSec``.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import signal
from collections.abc import Callable, Mapping
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import DeferredList
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.web.resource import Resource

from wsdaemon.adapter.switching import SwitchingFactory
from wsdaemon.allocator import keep_freed_memory
from wsdaemon.config import Config, ConfigError, EndpointConfig, ListenerConfig, Problem
from wsdaemon.interfaces import WebSocketServerFactory
from wsdaemon.systemd import Notifier, watchdog_seconds
from wsdaemon.tls import ServerTLS, TLSConfigError

#: How often STATUS= is refreshed (only sent when the text changed).
STATUS_INTERVAL_SECONDS = 5.0

Factories = dict[str, WebSocketServerFactory[Any]]
Resolve = Callable[[Config, list[Problem]], Factories]
BuildRoot = Callable[[Config, Factories], Resource]


def utc_now() -> datetime.datetime:
    """The current time (certificate expiry is in UTC)."""
    return datetime.datetime.now(datetime.UTC)


def _listener_shape(listeners: tuple[ListenerConfig, ...]) -> list[tuple[str, bool]]:
    """What only a restart can change: the endpoints and whether each speaks TLS."""
    return [(listener.endpoint, listener.tls is not None) for listener in listeners]


def _handler_key(endpoint: EndpointConfig) -> tuple[str, str]:
    return (endpoint.handler, repr(sorted(endpoint.options.items())))


class LifecycleService(Service):
    """Readiness, signals, reload and watchdog for one daemon (added last to its MultiService)."""

    log = Logger()

    def __init__(
        self,
        reactor: Any,
        config: Config,
        factory: SwitchingFactory,
        factories: Factories,
        tls: Mapping[str, ServerTLS],
        listeners: list[Any],
        drain: Any,
        *,
        notifier: Notifier | None = None,
        load_config: Callable[[], Config] | None = None,
        resolve: Resolve | None = None,
        build_root: BuildRoot | None = None,
        environ: Mapping[str, str] | None = None,
        install_signal: Callable[[int, Any], Any] = signal.signal,
        now: Callable[[], datetime.datetime] = utc_now,
    ) -> None:
        self.reactor = reactor
        self.config = config
        self.factory = factory
        self.factories = dict(factories)
        self.tls = dict(tls)
        self.listeners = listeners
        self.drain = drain
        self.notifier = notifier or Notifier(None)
        self.load_config = load_config
        self.resolve = resolve
        self.build_root = build_root
        self.environ = os.environ if environ is None else environ
        self.install_signal = install_signal
        self.now = now
        self.stopping = False
        self._timers: list[LoopingCall] = []
        self._last_status = ""

    # --- start and stop ------------------------------------------------------------

    def startService(self) -> None:
        """Once the reactor runs: take the signals, then say READY when every listener listens."""
        super().startService()  # type: ignore[no-untyped-call]  # super(): mypy#16653
        keep_freed_memory(self.config.allocator_cache_bytes)
        self.reactor.callWhenRunning(self._running)

    def stopService(self) -> None:
        """Tell systemd we are stopping and stop the timers.

        The signal handlers stay: during the drain a second SIGTERM changes nothing and a
        SIGHUP is ignored, where the default action would kill the process mid-drain.
        """
        super().stopService()  # type: ignore[no-untyped-call]  # super(): mypy#16653
        self._announce_stopping()
        for timer in self._timers:
            if timer.running:
                timer.stop()
        self._timers = []

    def _running(self) -> None:
        self.install_signal(signal.SIGTERM, self._on_sigterm)
        self.install_signal(signal.SIGHUP, self._on_sighup)
        self._warn_expiring()
        listening = [
            listener.listening for listener in self.listeners if getattr(listener, "listening", None) is not None
        ]
        DeferredList(listening).addCallback(lambda _: self._ready())

    def _ready(self) -> None:
        """Every listener has tried; READY=1 only if all of them listen (else the daemon is exiting)."""
        if self.stopping or not all(getattr(listener, "port", None) is not None for listener in self.listeners):
            return
        self.notifier.ready(self.status_text())
        self._last_status = self.status_text()
        interval = watchdog_seconds(self.environ, os.getpid())
        if interval is not None:
            self._start_timer(self.notifier.watchdog, interval / 2)
            self.log.info("systemd watchdog: pinging every {seconds:.1f} s", seconds=interval / 2)
        if self.notifier.enabled:
            self._start_timer(self._refresh_status, STATUS_INTERVAL_SECONDS)

    def _start_timer(self, function: Callable[[], None], seconds: float) -> None:
        timer = LoopingCall(function)
        timer.clock = self.reactor
        timer.start(seconds, now=True)
        self._timers.append(timer)

    # --- signals ---------------------------------------------------------------------

    def _on_sigterm(self, number: int, frame: Any) -> None:
        self.reactor.callFromThread(self.terminate)

    def _on_sighup(self, number: int, frame: Any) -> None:
        self.reactor.callFromThread(self.reload)

    def terminate(self) -> None:
        """Graceful shutdown: the reactor's shutdown triggers stop listening and drain with 1001."""
        if self.stopping:
            return
        self.log.info(
            "SIGTERM: closing {count} WebSockets with 1001, waiting up to {seconds} s, then exiting",
            count=self.websocket_count(),
            seconds=self.config.limits.drain_timeout_seconds,
        )
        self._announce_stopping()
        self.reactor.stop()

    def _announce_stopping(self) -> None:
        if not self.stopping:
            self.stopping = True
            self.notifier.stopping(f"stopping; draining {self.websocket_count()} WebSockets")

    # --- status ------------------------------------------------------------------------

    def websocket_count(self) -> int:
        """Open WebSocket connections (upgraded ones) on all listeners."""
        return sum(1 for wrapper in self.factory.protocols if getattr(wrapper, "upgraded", None) is not None)

    def status_text(self) -> str:
        """The one-line status systemd shows: connections now."""
        total = len(self.factory.protocols)
        return f"{total} connections ({self.websocket_count()} WebSocket) on {len(self.listeners)} listeners"

    def _refresh_status(self) -> None:
        text = self.status_text()
        if text != self._last_status and not self.stopping:
            self._last_status = text
            self.notifier.status(text)

    def _warn_expiring(self) -> None:
        now = self.now()
        for endpoint, tls in self.tls.items():
            for line in tls.expiry_warnings(now):
                self.log.warn("{endpoint}: {warning}", endpoint=endpoint, warning=line)

    # --- reload ------------------------------------------------------------------------

    def reload(self) -> bool:
        """SIGHUP: re-read the config and the certificates; True if everything applied."""
        if self.stopping:
            self.log.info("SIGHUP ignored: shutting down")
            return False
        self.log.info("SIGHUP: reloading configuration and certificates")
        self.notifier.reloading()
        config = self._load()
        certificates_ok = self._reload_certificates(config)
        config_ok = config is not None and self._apply(config)
        self._warn_expiring()
        ok = certificates_ok and config_ok
        status = self.status_text() if ok else f"{self.status_text()}; last reload failed (see the log)"
        self.notifier.ready(status)
        self.log.info(
            "reload {outcome}", outcome="done" if ok else "done with errors; the failed parts kept their old settings"
        )
        return ok

    def _load(self) -> Config | None:
        if self.load_config is None:
            return self.config
        try:
            return self.load_config()
        except ConfigError as error:
            self.log.error("reload: configuration refused, keeping the running one: {error}", error=str(error))
            return None

    def _reload_certificates(self, config: Config | None) -> bool:
        """Re-read each TLS listener's files; a listener whose new files fail keeps its old ones.

        The files named in ``config`` are used where the listener is still TLS there;
        otherwise (or without a usable config) the files it serves now are read again.
        """
        listeners = config.listeners if config is not None else ()
        settings = {listener.endpoint: listener.tls for listener in listeners if listener.tls is not None}
        ok = True
        for endpoint, tls in self.tls.items():
            try:
                tls.reload(settings.get(endpoint))
            except TLSConfigError as error:
                ok = False
                self.log.error(
                    "reload: new certificate for {endpoint} refused, still serving the old one: {error}",
                    endpoint=endpoint,
                    error=str(error),
                )
            else:
                served = "; ".join(
                    f"{item.server_name or 'default'} {item.describe(self.now())}" for item in tls.served
                )
                self.log.info("reload: {endpoint} now serves {served}", endpoint=endpoint, served=served)
        return ok

    def _apply(self, config: Config) -> bool:
        """Endpoints and limits for new connections; listener changes are logged as needing a restart."""
        if _listener_shape(config.listeners) != _listener_shape(self.config.listeners):
            self.log.warn(
                "reload: listeners changed in {source}; that needs a restart (still listening on {endpoints})",
                source=config.source,
                endpoints=", ".join(listener.endpoint for listener in self.config.listeners),
            )
        if self.resolve is None or self.build_root is None:
            return True
        problems: list[Problem] = []
        fresh = self.resolve(config, problems)
        if problems:
            error = ConfigError(config.source or "(configuration)", problems)
            self.log.error("reload: endpoints refused, keeping the running ones: {error}", error=str(error))
            return False
        factories = self._keep_unchanged(config, fresh)
        site = self.factory.wrappedFactory
        site.resource = self.build_root(config, factories)
        site.limits = self.factory.limits = config.limits
        self.drain.timeout_seconds = config.limits.drain_timeout_seconds
        keep_freed_memory(config.allocator_cache_bytes)
        self.factories = factories
        self.config = dataclasses.replace(config, listeners=self.config.listeners)  # those change on restart only
        self.log.info("reload: endpoints and limits apply to new connections; open ones keep theirs")
        return True

    def _keep_unchanged(self, config: Config, fresh: Factories) -> Factories:
        """Reuse the running factory of an endpoint whose handler and options are unchanged."""
        before = {endpoint.path: _handler_key(endpoint) for endpoint in self.config.endpoints}
        factories: Factories = {}
        for endpoint in config.endpoints:
            same = before.get(endpoint.path) == _handler_key(endpoint) and endpoint.path in self.factories
            factories[endpoint.path] = self.factories[endpoint.path] if same else fresh[endpoint.path]
            if not same:
                self.log.info(
                    "reload: {path} now uses handler {handler} with new options",
                    path=endpoint.path,
                    handler=endpoint.handler,
                )
        return factories
