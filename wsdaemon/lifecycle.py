"""The running daemon's lifecycle: readiness, SIGHUP reload, SIGTERM drain, watchdog.

Rules for this file:

* Signals only schedule work on the reactor (``callFromThread``), as Twisted's own
  handlers do; everything else runs in the reactor thread.
* SIGTERM is ours, not the reactor's: it stops the reactor the same way, but
  without recording an exit signal, so ``twist`` exits 0 once the shutdown
  triggers (stop listening, close every WebSocket with 1001, wait for the
  drain; see :class:`wsdaemon.service.DaemonService`) are done. The handlers are
  installed once the reactor runs, after Twisted's own, which they replace.
* A reload is the :class:`~wsdaemon.reload.Reloader`'s work (certificates, then a
  new Runtime swapped in whole); this service wraps it in sd_notify and refuses it
  while stopping.
* sd_notify: READY=1 once every listener listens; RELOADING=1 … READY=1 around a
  reload; STOPPING=1; STATUS= with the connection count; WATCHDOG=1 from a
  reactor timer at half of ``WatchdogSec``.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from twisted.application.service import Service
from twisted.internet.defer import DeferredList
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from wsdaemon.adapter.switching import SwitchingFactory
from wsdaemon.heap import leave_alone
from wsdaemon.reload import Reloader
from wsdaemon.runtime import apply_process_settings
from wsdaemon.systemd import Notifier, watchdog_seconds

if TYPE_CHECKING:
    from wsdaemon.service import ListenerService

#: How often STATUS= is refreshed (only sent when the text changed).
STATUS_INTERVAL_SECONDS = 5.0

#: Installs a signal handler, as ``signal.signal`` does (tests pass a recorder).
InstallSignal = Callable[[int, Any], Any]


class LifecycleReactor(Protocol):
    """What the lifecycle asks of the reactor (besides time): to run, to stop, and calls from signal handlers."""

    def callWhenRunning(self, callable: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call once the reactor runs."""

    def callFromThread(self, callable: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """Call in the reactor thread (safe from a signal handler)."""

    def stop(self) -> None:
        """Stop the reactor: its shutdown triggers stop the service tree."""


class LifecycleService(Service):
    """Readiness, signals, reload and watchdog for one daemon.

    Args:
        reactor: the daemon's reactor (it also provides ``IReactorTime``, for the timers).
        factory: the listening factory, whose connections the status counts.
        listeners: the listener services; READY=1 waits until each has tried to listen.
        reloader: does a reload's work, and holds the running Runtime.
        notifier: sd_notify (default: none).
        environ: where ``WATCHDOG_USEC`` is read (default: ``os.environ``).
        install_signal: installs the SIGTERM and SIGHUP handlers (default: ``signal.signal``).
        settle_heap: run once the daemon is ready and after each reload (the daemon passes
            :func:`wsdaemon.heap.settle`; default: nothing, so a test's process is left alone).
    """

    log = Logger()

    def __init__(
        self,
        reactor: LifecycleReactor,
        factory: SwitchingFactory,
        listeners: Sequence[ListenerService],
        reloader: Reloader,
        *,
        notifier: Notifier | None = None,
        environ: Mapping[str, str] | None = None,
        install_signal: InstallSignal = signal.signal,
        settle_heap: Callable[[], None] = leave_alone,
    ) -> None:
        self.reactor = reactor
        self.factory = factory
        self.listeners = list(listeners)
        self.reloader = reloader
        self.notifier = notifier or Notifier(None)
        self.environ = os.environ if environ is None else environ
        self.install_signal = install_signal
        self.settle_heap = settle_heap
        self.stopping = False
        self._timers: list[LoopingCall] = []
        self._last_status = ""

    # --- start and stop ------------------------------------------------------------

    def startService(self) -> None:
        """Once the reactor runs: take the signals, then say READY when every listener listens."""
        super().startService()  # type: ignore[no-untyped-call]  # super(): mypy#16653
        apply_process_settings(self.reloader.runtime.current.config)
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
        self.reloader.warn_expiring()
        listening = [listener.listening for listener in self.listeners if listener.listening is not None]
        DeferredList(listening).addCallback(lambda _: self._ready())

    def _ready(self) -> None:
        """Every listener has tried; READY=1 only if all of them listen (else the daemon is exiting)."""
        if self.stopping or not all(listener.port is not None for listener in self.listeners):
            return
        self.settle_heap()
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
        timer.clock = IReactorTime(self.reactor)
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
            seconds=self.reloader.runtime.current.limits.drain_timeout_seconds,
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
        return sum(1 for wrapper in self.factory.protocols if wrapper.upgraded is not None)

    def status_text(self) -> str:
        """The one-line status systemd shows: connections now."""
        total = len(self.factory.protocols)
        return f"{total} connections ({self.websocket_count()} WebSocket) on {len(self.listeners)} listeners"

    def _refresh_status(self) -> None:
        text = self.status_text()
        if text != self._last_status and not self.stopping:
            self._last_status = text
            self.notifier.status(text)

    # --- reload ------------------------------------------------------------------------

    def reload(self) -> bool:
        """SIGHUP: re-read the config and the certificates between RELOADING=1 and READY=1; True if all applied."""
        if self.stopping:
            self.log.info("SIGHUP ignored: shutting down")
            return False
        self.log.info("SIGHUP: reloading configuration and certificates")
        self.notifier.reloading()
        ok = self.reloader.reload()
        self.settle_heap()
        status = self.status_text() if ok else f"{self.status_text()}; last reload failed (see the log)"
        self.notifier.ready(status)
        self.log.info(
            "reload {outcome}", outcome="done" if ok else "done with errors; the failed parts kept their old settings"
        )
        return ok
