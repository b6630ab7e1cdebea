"""What the main process tells systemd, from what its workers tell it.

Rules for this file:

* READY=1 once, when every worker has said READY=1 for the first time; a replaced
  worker's readiness is logged, not announced again.
* RELOADING=1 on SIGHUP, then READY=1 once every worker that was asked to reload has
  answered (or died); before the first READY=1 systemd is told nothing of reloads.
* WATCHDOG=1 from a timer at half of ``WatchdogSec``, but only while every running worker
  sent a heartbeat within ``heartbeat_timeout_seconds``: a hung worker stops the pings
  (until the supervisor has replaced it).
* STATUS= sums the workers' own status lines; STOPPING=1 once.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from wsdaemon.config import ProcessConfig
from wsdaemon.systemd import Notifier, watchdog_seconds
from wsdaemon.workers.slots import RELOAD_FAILED, Slot, stale, status_text

#: How often STATUS= is refreshed (only sent when the text changed), as in a single process.
STATUS_INTERVAL_SECONDS = 5.0


class Readiness:
    """The main process's sd_notify state, fed by the supervisor with its workers' events."""

    log = Logger()

    def __init__(
        self,
        reactor: Any,
        slots: Sequence[Slot],
        process: ProcessConfig,
        notifier: Notifier,
        environ: Mapping[str, str],
    ) -> None:
        self.reactor = reactor
        self.slots = slots
        self.process = process
        self.notifier = notifier
        self.environ = environ
        self.serving = False  # READY=1 was sent: every worker listened once
        self.stopping = False
        self.reloading: set[int] | None = None  # during a reload: the slots not done yet
        self._timers: list[LoopingCall] = []
        self._last_status = ""

    def start_timer(self, function: Callable[[], None], seconds: float) -> None:
        """Run ``function`` every ``seconds`` until :meth:`stop`."""
        timer = LoopingCall(function)
        timer.clock = self.reactor
        timer.start(seconds, now=False)
        self._timers.append(timer)

    def worker_ready(self, slot: Slot) -> None:
        """A worker said READY=1: after its start, or at the end of its reload."""
        if not slot.ready:
            slot.ready = True
            self.log.info("{worker} ready", worker=slot.name)
            if not self.serving and all(other.ready for other in self.slots):
                self._serve()
        elif self.reloading is not None and slot.index in self.reloading:
            if RELOAD_FAILED in slot.status:
                self.log.warn("{worker}: reload done with errors (see its lines above)", worker=slot.name)
            self.worker_gone(slot)

    def worker_gone(self, slot: Slot) -> None:
        """A worker exited, or finished its reload: the reload may be complete."""
        if self.reloading is not None:
            self.reloading.discard(slot.index)
            self._maybe_reloaded()

    def reload_started(self, pending: set[int]) -> None:
        """SIGHUP was passed to the workers in ``pending``."""
        if not self.serving:
            return
        self.notifier.reloading()
        self.reloading = set(pending)
        self._maybe_reloaded()

    def _maybe_reloaded(self) -> None:
        if self.reloading is None or self.reloading or self.stopping:
            return
        self.reloading = None
        self.log.info("reload done in every worker")
        self.notifier.ready(status_text(self.slots))

    def _serve(self) -> None:
        self.serving = True
        self.log.info("all {count} workers ready", count=len(self.slots))
        self._last_status = status_text(self.slots)
        self.notifier.ready(self._last_status)
        interval = watchdog_seconds(self.environ, os.getpid())
        if interval is not None:
            self.start_timer(self._watchdog, interval / 2)
            self.log.info(
                "systemd watchdog: pinging every {seconds:.1f} s while every worker is alive", seconds=interval / 2
            )
        if self.notifier.enabled:
            self.start_timer(self._refresh_status, STATUS_INTERVAL_SECONDS)

    def _watchdog(self) -> None:
        if not stale(self.slots, self.reactor.seconds(), self.process.heartbeat_timeout_seconds):
            self.notifier.watchdog()

    def _refresh_status(self) -> None:
        text = status_text(self.slots)
        if text != self._last_status and not self.stopping:
            self._last_status = text
            self.notifier.status(text)

    def stop(self) -> None:
        """STOPPING=1 (once) and no more timers."""
        if not self.stopping:
            self.stopping = True
            running = sum(slot.process is not None for slot in self.slots)
            self.notifier.stopping(f"stopping; {running} workers draining")
        for timer in self._timers:
            if timer.running:
                timer.stop()
        self._timers = []
