"""The main process with ``workers > 1``: it holds the sockets and supervises; workers serve.

Rules for this file:

* The main process handles no client traffic: it opens every listener
  (:mod:`wsdaemon.workers.sockets`), never accepts on them, and hands them to N workers,
  each started as the same command line plus ``--worker N``.
* A worker that exits is restarted at once; one that keeps dying young waits longer each
  time (:mod:`wsdaemon.workers.backoff`). Every exit is one log line: the worker, how it
  ended, what happens next. A worker dying before the daemon was ever ready stops the
  daemon with status 1, as a listener that cannot listen does in a single process.
* Signals only schedule work (``callFromThread``), and are taken once the reactor runs.
  SIGTERM: STOPPING=1, SIGTERM to every worker (each drains with 1001), SIGKILL to those
  still running ``drain_timeout_seconds + stop_grace_seconds`` later, exit 0. SIGHUP:
  RELOADING=1, SIGHUP to every ready worker, READY=1 once each has reloaded.
* sd_notify: READY=1 once every worker listens; WATCHDOG=1 only while every running worker
  sent a heartbeat within ``heartbeat_timeout_seconds``; a worker past that is killed and
  replaced. Workers report over their channel (:mod:`wsdaemon.workers.channel`) in
  sd_notify's own words.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.internet.error import ProcessExitedAlready
from twisted.internet.protocol import ProcessProtocol
from twisted.logger import Logger
from twisted.python.failure import Failure

from wsdaemon.broker.relay import RelayHub
from wsdaemon.config import Config
from wsdaemon.systemd import Notifier
from wsdaemon.workers.backoff import RestartBackoff
from wsdaemon.workers.channel import (
    FROM_SUPERVISOR_FD,
    TO_SUPERVISOR_FD,
    ChannelError,
    Hello,
    MessageDecoder,
    MessageKind,
    socket_fd,
)
from wsdaemon.workers.metrics import WorkerFigures
from wsdaemon.workers.readiness import Readiness
from wsdaemon.workers.slots import Slot, describe_exit, notify_fields, stale
from wsdaemon.workers.sockets import HeldSocket, ListenFailed, close_sockets

#: The environment a worker must not inherit: systemd's words are for the main process only.
SYSTEMD_VARIABLES = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES")

Listen = Callable[[], "Deferred[list[HeldSocket]]"]


def worker_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The main process's environment without the systemd variables."""
    return {name: value for name, value in environ.items() if name not in SYSTEMD_VARIABLES}


def _exit_1_after_shutdown() -> None:
    """Exit 1 once the reactor has stopped, so systemd and scripts see the failure."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(1)


class WorkerProcess(ProcessProtocol):
    """The supervisor's end of one worker process: its channel and its exit."""

    def __init__(self, supervisor: Supervisor, slot: Slot) -> None:
        self.supervisor = supervisor
        self.slot = slot
        self.decoder = MessageDecoder()

    def childDataReceived(self, childFD: int, data: bytes) -> None:
        """Messages from the worker's channel (its fd 3)."""
        if childFD != TO_SUPERVISOR_FD:
            return
        try:
            messages = self.decoder.feed(data)
        except ChannelError as error:
            self.supervisor.kill(self.slot, f"it broke its channel: {error}")
            return
        for kind, body in messages:
            self.supervisor.message(self, kind, body)

    def send(self, message: bytes) -> None:
        """Write one encoded message to the worker (its fd 0), while it runs."""
        if self.slot.process is not None and self.slot.protocol is self:
            self.slot.process.writeToChild(FROM_SUPERVISOR_FD, message)

    def processEnded(self, reason: Failure) -> None:
        """The worker is gone (exit status or signal in ``reason.value``)."""
        self.supervisor.exited(self, reason.value or Exception("unknown exit"))


class Supervisor(Service):
    """Spawns, watches and restarts the workers; owns signals and sd_notify in the main process.

    Args:
        reactor: provides IReactorProcess, IReactorTime and IReactorCore.
        config: the configuration the main process started with.
        count: the number of workers.
        command: the worker's argv before ``--worker N`` (the main process's own command line).
        listen: opens and holds the listeners (:func:`~wsdaemon.workers.sockets.open_sockets`).
        notifier: sd_notify towards systemd.
        spawn: ``reactor.spawnProcess`` unless a test replaces it.
    """

    log = Logger()

    def __init__(
        self,
        reactor: Any,
        config: Config,
        count: int,
        command: Sequence[str],
        listen: Listen,
        *,
        notifier: Notifier | None = None,
        spawn: Callable[..., Any] | None = None,
        environ: Mapping[str, str] | None = None,
        install_signal: Callable[[int, Any], Any] = signal.signal,
    ) -> None:
        self.reactor = reactor
        self.config = config
        self.process = config.process
        self.command = list(command)
        self.listen = listen
        self.spawn = spawn or (lambda *args, **kwargs: reactor.spawnProcess(*args, **kwargs))
        self.environ = dict(os.environ if environ is None else environ)
        self.install_signal = install_signal
        self.slots = [
            Slot(index, RestartBackoff(self.process.restart_delay_max_seconds)) for index in range(1, count + 1)
        ]
        self.readiness = Readiness(reactor, self.slots, self.process, notifier or Notifier(None), self.environ)
        #: Broadcast channels across the workers (used when there is no [broker]).
        self.relay = RelayHub(reactor)
        #: Each worker's latest figures, for /metrics (sent only when [metrics] is enabled).
        self.figures = WorkerFigures()
        self.sockets: list[HeldSocket] = []
        self._all_exited: Deferred[None] | None = None
        self._kill_call: Any = None

    # --- start -------------------------------------------------------------------------

    def startService(self) -> None:
        """Once the reactor runs: take the signals, open the listeners, start the workers."""
        super().startService()  # type: ignore[no-untyped-call]  # super(): mypy#16653
        self.relay.start()
        self.reactor.callWhenRunning(self._running)

    def _running(self) -> None:
        self.install_signal(signal.SIGTERM, lambda number, frame: self.reactor.callFromThread(self.terminate))
        self.install_signal(signal.SIGHUP, lambda number, frame: self.reactor.callFromThread(self.reload))
        self.listen().addCallbacks(self._listening, self._listen_failed)

    def _listening(self, sockets: list[HeldSocket]) -> None:
        self.sockets = sockets
        if self.stopping:
            close_sockets(sockets)
            return
        for held in sockets:
            self.log.info("listening on {endpoint} for the workers", endpoint=held.listener.endpoint)
        self.log.info("starting {count} workers", count=len(self.slots))
        self.readiness.start_timer(self._check_heartbeats, self.process.heartbeat_timeout_seconds / 4)
        for slot in self.slots:
            self._spawn(slot)

    def _listen_failed(self, failure: Failure) -> None:
        failure.trap(ListenFailed)
        self.log.critical("{error}", error=str(failure.value))
        self.fail()

    @property
    def stopping(self) -> bool:
        """Shutdown has begun: nothing is restarted any more."""
        return self.readiness.stopping

    @property
    def serving(self) -> bool:
        """READY=1 was sent: every worker listened once."""
        return self.readiness.serving

    def fail(self) -> None:
        """Stop the daemon with exit status 1 (something it cannot serve without went wrong)."""
        if not self.stopping:
            self.reactor.addSystemEventTrigger("after", "shutdown", _exit_1_after_shutdown)
            self.reactor.stop()

    # --- workers -------------------------------------------------------------------------

    def _spawn(self, slot: Slot) -> None:
        slot.restart = None
        if self.stopping:
            return
        protocol = WorkerProcess(self, slot)
        child_fds: dict[int, int | str] = {FROM_SUPERVISOR_FD: "w", 1: 1, 2: 2, TO_SUPERVISOR_FD: "r"}
        child_fds.update({socket_fd(index): held.fd for index, held in enumerate(self.sockets)})
        args = [*self.command, "--worker", str(slot.index)]
        try:
            process = self.spawn(protocol, args[0], args, env=worker_environment(self.environ), childFDs=child_fds)
        except OSError as error:
            self.log.error("cannot start worker {index}: {error}", index=slot.index, error=error)
            self._schedule_restart(slot, 0.0)
            return
        slot.started_as(process, protocol, self.reactor.seconds())
        self.relay.attach(slot.index, lambda data: process.writeToChild(FROM_SUPERVISOR_FD, data))
        heartbeat = self.process.heartbeat_timeout_seconds / 4
        listeners = tuple(held.listener for held in self.sockets)
        process.writeToChild(FROM_SUPERVISOR_FD, Hello(slot.index, heartbeat, listeners).encode())
        self.log.info("{worker} started", worker=slot.name)

    def exited(self, protocol: WorkerProcess, reason: BaseException) -> None:
        """A worker process ended: log it, then restart it, or finish the shutdown."""
        slot = protocol.slot
        if slot.protocol is not protocol:
            return
        ran = self.reactor.seconds() - slot.started
        how = describe_exit(reason) + (f" ({slot.kill_reason})" if slot.kill_reason else "")
        name = slot.name
        slot.ended()
        self.relay.forget(slot.index)
        self.figures.forget(slot.index)
        if self.stopping:
            self.log.info("{worker} {how} after {ran:.1f} s; shutting down", worker=name, how=how, ran=ran)
            self._maybe_all_exited()
        elif not self.serving:
            self.log.critical(
                "{worker} {how} before it was ready; stopping (its log lines above say why)", worker=name, how=how
            )
            self.fail()
        else:
            self._schedule_restart(slot, ran, name, how)
        self.readiness.worker_gone(slot)

    def _schedule_restart(self, slot: Slot, ran: float, name: str = "", how: str = "") -> None:
        delay = slot.backoff.delay_after_exit(ran)
        if delay == 0:
            then = "restarting it now"
        else:
            then = f"restarting it in {delay:g} s ({slot.backoff.quick_exits} exits in a row within {slot.backoff.max_delay_seconds:g} s of starting)"
        if name:
            self.log.warn("{worker} {how} after {ran:.1f} s; {then}", worker=name, how=how, ran=ran, then=then)
        slot.restart = self.reactor.callLater(delay, self._spawn, slot)

    def kill(self, slot: Slot, reason: str) -> None:
        """SIGKILL a worker that cannot go on; its exit line says ``reason``."""
        if slot.process is None or slot.kill_reason is not None:
            return
        slot.kill_reason = reason
        self.log.error("{worker}: {reason}; killing it (SIGKILL)", worker=slot.name, reason=reason)
        self._signal(slot, "KILL")

    def _signal(self, slot: Slot, name: str) -> None:
        try:
            slot.process.signalProcess(name)
        except (ProcessExitedAlready, OSError):
            pass  # it is exiting; processEnded follows

    def _check_heartbeats(self) -> None:
        for slot, reason in stale(self.slots, self.reactor.seconds(), self.process):
            self.kill(slot, reason)

    # --- what workers say ------------------------------------------------------------------

    def message(self, protocol: WorkerProcess, kind: MessageKind, body: bytes) -> None:
        """One message from a worker: its sd_notify words (READY, RELOADING, STATUS, WATCHDOG), or the relay's."""
        slot = protocol.slot
        if slot.protocol is not protocol:
            return
        if kind is not MessageKind.NOTIFY:
            try:
                if self.figures.received(slot.index, kind, body, protocol.send):
                    return
                if not self.relay.received(slot.index, kind, body):
                    raise ChannelError(f"unexpected {kind.name} message")
            except ChannelError as error:
                self.kill(slot, f"it broke its channel: {error}")
            return
        slot.heartbeat = self.reactor.seconds()
        fields = dict(notify_fields(body))
        if "STATUS" in fields:
            slot.status = fields["STATUS"]
        if fields.get("READY") == "1":
            if not slot.ready and slot.reload_wanted:
                slot.reload_wanted = False
                self._signal(slot, "HUP")
            self.readiness.worker_ready(slot)

    # --- signals ---------------------------------------------------------------------------

    def reload(self) -> None:
        """SIGHUP: every ready worker reloads (config and certificates); READY=1 when all did.

        A worker still starting gets its SIGHUP once it is ready (before, SIGHUP would kill it).
        """
        if self.stopping:
            self.log.info("SIGHUP ignored: shutting down")
            return
        pending = set()
        for slot in self.slots:
            if slot.process is not None and slot.ready:
                pending.add(slot.index)
                self._signal(slot, "HUP")
            elif slot.process is not None:
                slot.reload_wanted = True
        self.log.info("SIGHUP: reloading {count} workers", count=len(pending))
        self.readiness.reload_started(pending)

    def terminate(self) -> None:
        """SIGTERM: the reactor's shutdown stops every worker (see :meth:`stopService`); exit 0."""
        if self.stopping:
            return
        self.readiness.stop()
        self.log.info(
            "SIGTERM: stopping {count} workers; each closes its WebSockets with 1001 within {seconds} s",
            count=sum(slot.process is not None for slot in self.slots),
            seconds=self.config.limits.drain_timeout_seconds,
        )
        self.reactor.stop()

    # --- stop ------------------------------------------------------------------------------

    def stopService(self) -> Deferred[None] | None:
        """SIGTERM every worker and wait for all to exit; SIGKILL those that outlast the drain."""
        super().stopService()  # type: ignore[no-untyped-call]  # super(): mypy#16653
        self.relay.stop()
        self.readiness.stop()
        close_sockets(self.sockets)
        self.sockets = []
        for slot in self.slots:
            if slot.restart is not None and slot.restart.active():
                slot.restart.cancel()
            if slot.process is not None:
                self._signal(slot, "TERM")
        if not any(slot.process is not None for slot in self.slots):
            return None
        self._all_exited = Deferred()
        deadline = self.config.limits.drain_timeout_seconds + self.process.stop_grace_seconds
        self._kill_call = self.reactor.callLater(deadline, self._kill_remaining, deadline)
        return self._all_exited

    def _kill_remaining(self, deadline: float) -> None:
        for slot in self.slots:
            self.kill(slot, f"still running {deadline:g} s after SIGTERM")

    def _maybe_all_exited(self) -> None:
        if any(slot.process is not None for slot in self.slots) or self._all_exited is None:
            return
        if self._kill_call is not None and self._kill_call.active():
            self._kill_call.cancel()
        done, self._all_exited = self._all_exited, None
        self.log.info("every worker exited")
        done.callback(None)
