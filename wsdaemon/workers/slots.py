"""What the supervisor knows about each worker, and how it says it: pure bookkeeping, no I/O.

A *slot* is one worker number (1 … N) for the daemon's whole life; the process in it changes
as workers die and are replaced. The supervisor reads sd_notify text from its workers
(:func:`notify_fields`) and keeps, per slot, whether the worker is ready, when it last gave
a sign of life, and the status line it sent.
"""

from __future__ import annotations

import re
import signal
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from twisted.internet.error import ProcessTerminated

from wsdaemon.workers.backoff import RestartBackoff

# What a worker's lifecycle says in STATUS= ("3 connections (1 WebSocket) on 1 listeners").
_STATUS = re.compile(r"(\d+) connections \((\d+) WebSocket\)")
RELOAD_FAILED = "last reload failed"


@dataclass
class Slot:
    """One worker number and the process serving as it now (``process`` is None between two)."""

    index: int
    backoff: RestartBackoff
    process: Any = None  # the IProcessTransport while a process runs
    protocol: Any = None  # its WorkerProcess, to tell a late event of a dead process from the live one's
    pid: int | None = None
    started: float = 0.0
    heartbeat: float = 0.0  # when it last sent anything (the heartbeat is WATCHDOG=1)
    ready: bool = False  # READY=1 since this process started: it listens on every socket
    status: str = ""
    reload_wanted: bool = False  # a SIGHUP came while it was starting: forward it once it is ready
    kill_reason: str | None = None  # why the supervisor killed it, for the exit line
    restart: Any = None  # the IDelayedCall of a scheduled restart

    @property
    def name(self) -> str:
        """``worker 2 (pid 1234)`` for log lines."""
        return f"worker {self.index} (pid {self.pid})" if self.pid is not None else f"worker {self.index}"

    def started_as(self, process: Any, protocol: Any, now: float) -> None:
        """A new process now serves this slot."""
        self.process, self.protocol, self.pid = process, protocol, process.pid
        self.started = self.heartbeat = now
        self.ready, self.status, self.kill_reason = False, "", None

    def ended(self) -> None:
        """The slot's process is gone."""
        self.process = self.protocol = None
        self.ready = False
        self.status = ""


def notify_fields(body: bytes) -> list[tuple[str, str]]:
    """The ``KEY=VALUE`` lines of an sd_notify message, in order (lines without ``=`` are skipped)."""
    fields = []
    for line in body.decode("utf-8", "replace").split("\n"):
        key, equals, value = line.partition("=")
        if equals:
            fields.append((key, value))
    return fields


def describe_exit(reason: BaseException) -> str:
    """How a process ended, for a person: ``exited with status 1`` or ``killed by SIGKILL (signal 9)``."""
    if isinstance(reason, ProcessTerminated) and reason.signal is not None:
        try:
            name = signal.Signals(reason.signal).name
        except ValueError:
            name = "an unknown signal"
        return f"killed by {name} (signal {reason.signal})"
    code = getattr(reason, "exitCode", None)
    return f"exited with status {code if code is not None else 'unknown'}"


def status_text(slots: Sequence[Slot]) -> str:
    """The main process's one-line STATUS=: workers ready, and their connections added up."""
    ready = [slot for slot in slots if slot.process is not None and slot.ready]
    connections = websockets = 0
    for slot in ready:
        found = _STATUS.match(slot.status)
        if found:
            connections += int(found.group(1))
            websockets += int(found.group(2))
    text = f"{len(ready)} of {len(slots)} workers ready; {connections} connections ({websockets} WebSocket)"
    failed = [str(slot.index) for slot in ready if RELOAD_FAILED in slot.status]
    if failed:
        text += f"; {RELOAD_FAILED} in worker {', '.join(failed)} (see the log)"
    return text


def stale(slots: Iterable[Slot], now: float, timeout: float) -> list[Slot]:
    """Running workers that gave no sign of life for more than ``timeout`` seconds."""
    return [slot for slot in slots if slot.process is not None and now - slot.heartbeat > timeout]
