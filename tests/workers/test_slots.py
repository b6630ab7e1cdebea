"""Per-worker bookkeeping (wsdaemon.workers.slots): exit wording, status sums, sd_notify fields."""

from __future__ import annotations

import signal

from twisted.internet.error import ProcessDone, ProcessTerminated

from tests.test_lifecycle import PLAIN, Daemon
from wsdaemon.workers.backoff import RestartBackoff
from wsdaemon.workers.slots import Slot, describe_exit, notify_fields, stale, status_text


class Process:
    def __init__(self, pid: int) -> None:
        self.pid = pid


def slot(index: int, status: str = "", ready: bool = True, heartbeat: float = 0.0) -> Slot:
    made = Slot(index, RestartBackoff(30))
    made.started_as(Process(100 + index), object(), heartbeat)
    made.ready, made.status = ready, status
    return made


def test_exit_status_and_signal_are_worded_for_people():
    """Exit lines say "exited with status N" or "killed by SIGNAME (signal N)"."""
    assert describe_exit(ProcessDone(0)) == "exited with status 0"
    assert describe_exit(ProcessTerminated(exitCode=3)) == "exited with status 3"
    assert describe_exit(ProcessTerminated(signal=signal.SIGKILL)) == "killed by SIGKILL (signal 9)"
    assert describe_exit(ProcessTerminated(signal=200)) == "killed by an unknown signal (signal 200)"


def test_status_adds_up_the_workers_connections():
    """STATUS= of the main process sums what its ready workers report."""
    slots = [
        slot(1, "3 connections (2 WebSocket) on 1 listeners"),
        slot(2, "4 connections (1 WebSocket) on 1 listeners"),
        slot(3, "9 connections (9 WebSocket) on 1 listeners", ready=False),
    ]
    assert status_text(slots) == "2 of 3 workers ready; 7 connections (3 WebSocket)"


def test_status_names_workers_whose_reload_failed():
    """A worker whose last reload failed is named in STATUS=."""
    slots = [slot(1, "0 connections (0 WebSocket) on 1 listeners; last reload failed (see the log)"), slot(2)]
    assert status_text(slots).endswith("; last reload failed in worker 1 (see the log)")


def test_status_reads_the_lifecycles_own_words():
    """The worker's STATUS= is the single process's status_text, which the sum parses."""
    daemon = Daemon(PLAIN)
    assert status_text([slot(1, daemon.lifecycle.status_text())]).endswith("; 0 connections (0 WebSocket)")


def test_notify_fields_keep_their_order_and_skip_junk():
    """sd_notify text is KEY=VALUE lines; a value may contain "="; lines without one are skipped."""
    assert notify_fields(b"READY=1\nSTATUS=a=b\njunk") == [("READY", "1"), ("STATUS", "a=b")]


def test_stale_workers_are_the_silent_running_ones():
    """Only running workers silent for longer than the timeout are stale."""
    silent, alive, gone = slot(1, heartbeat=0.0), slot(2, heartbeat=9.0), slot(3, heartbeat=0.0)
    gone.ended()
    assert stale([silent, alive, gone], now=10.0, timeout=5.0) == [silent]


def test_a_slot_is_named_with_its_pid():
    """Log lines name a worker by number and pid."""
    assert slot(2).name == "worker 2 (pid 102)"
    assert Slot(4, RestartBackoff(1)).name == "worker 4"
