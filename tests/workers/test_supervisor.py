"""The supervisor (wsdaemon.workers.supervisor) on a memory reactor: spawns, restarts, signals, shutdown.

No process is spawned and no socket opened: ``spawnProcess`` is a recorder, the workers'
channel messages and exits are played by the test, and time is ``clock.advance``.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from typing import Any

import pytest
from twisted.internet.defer import fail
from twisted.logger import LogLevel, globalLogPublisher

from tests.test_lifecycle import texts
from tests.workers.harness import COMMAND, Harness
from wsdaemon.workers.channel import TO_SUPERVISOR_FD
from wsdaemon.workers.sockets import ListenFailed


@pytest.fixture
def logged() -> Iterator[list[dict[str, Any]]]:
    """Every log event emitted during the test."""
    events: list[dict[str, Any]] = []
    globalLogPublisher.addObserver(events.append)
    yield events
    globalLogPublisher.removeObserver(events.append)


# --- start ---------------------------------------------------------------------------------------


def test_each_worker_runs_the_main_command_with_its_number_and_the_sockets():
    """Worker N is the main process's command plus --worker N, with the held sockets from fd 4 on."""
    harness = Harness().start()
    assert [spawned.args for spawned in harness.spawned] == [[*COMMAND, "--worker", "1"], [*COMMAND, "--worker", "2"]]
    assert harness.spawned[0].child_fds == {0: "w", 1: 1, 2: 2, TO_SUPERVISOR_FD: "r", 4: 17}


def test_workers_do_not_inherit_systemds_variables():
    """NOTIFY_SOCKET and LISTEN_FDS are for the main process: a worker's environment lacks them."""
    env = Harness().start().spawned[0].env
    assert env == {"PATH": "/usr/bin"}


def test_the_hello_names_the_worker_its_heartbeat_and_listeners():
    """Each worker's first message says its number, a heartbeat at a quarter of the timeout, and its listeners."""
    harness = Harness("[process]\nheartbeat_timeout_seconds = 8\n").start()
    hello = harness.spawned[1].process.hello()
    assert (hello.worker, hello.heartbeat_interval_seconds) == (2, 2.0)
    assert [listener.endpoint for listener in hello.listeners] == ["tcp:8080"]


def test_ready_once_every_worker_is_ready():
    """READY=1 goes to systemd only after the last worker said READY=1, and only once."""
    harness = Harness().start()
    harness.spawned[0].ready()
    assert harness.notified("READY=1") == []
    harness.spawned[1].ready(connections=3)
    assert harness.notified("READY=1") == [["READY=1", "STATUS=2 of 2 workers ready; 3 connections (0 WebSocket)"]]
    harness.current(1).dies(signal_number=signal.SIGKILL)
    harness.clock.advance(0)
    harness.current(1).ready()
    assert len(harness.notified("READY=1")) == 1


def test_a_worker_dying_before_the_daemon_was_ready_stops_it_with_status_1(logged):
    """A worker that exits during startup stops the daemon (exit 1), as a listener failing to listen does."""
    harness = Harness().start()
    harness.spawned[0].dies(code=3)
    assert harness.clock.hasStopped and len(harness.clock.triggers["after"]["shutdown"]) == 1  # exit 1 then
    assert any(
        "worker 1 (pid 1000) exited with status 3 before it was ready; stopping" in line
        for line in texts(logged, LogLevel.critical)
    )
    assert len(harness.spawned) == 2


def test_a_listener_that_cannot_listen_stops_the_daemon_before_any_worker(logged):
    """If a listener cannot be opened, no worker starts and the daemon stops, saying which listener."""
    harness = Harness()
    harness.supervisor.listen = lambda: fail(ListenFailed("tcp:80", "Permission denied"))
    harness.start()
    assert harness.spawned == [] and harness.clock.hasStopped
    assert "cannot listen on tcp:80: Permission denied" in texts(logged, LogLevel.critical)


# --- restarts ------------------------------------------------------------------------------------


def test_a_killed_worker_is_restarted_at_once_with_one_line(logged):
    """SIGKILL on a serving worker: one line naming it, the signal and what happens next; a new one at once."""
    harness = Harness().started_ready()
    harness.clock.advance(5)
    harness.current(1).dies(signal_number=signal.SIGKILL)
    harness.clock.advance(0)
    assert len(harness.spawned) == 3 and harness.current(1).at == 5
    assert "worker 1 (pid 1000) killed by SIGKILL (signal 9) after 5.0 s; restarting it now" in texts(logged)


def test_a_crash_loop_backs_off_exponentially_up_to_the_cap(logged):
    """A worker that dies right after each start is restarted after 0, 0.5, 1, 2 ... s, never more than the cap."""
    harness = Harness("[process]\nrestart_delay_max_seconds = 8\n").started_ready()
    starts = []
    for _ in range(8):
        harness.clock.advance(0.1)
        harness.current(2).dies(code=1)
        before = len(harness.spawned)
        waited = 0.0
        while len(harness.spawned) == before:
            harness.clock.advance(0.25)
            waited += 0.25
        starts.append(waited)
    assert starts == [0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]  # first: at once (the next clock step)
    line = "exited with status 1 after 0.1 s; restarting it in 8 s (8 exits in a row within 8 s of starting)"
    assert line in "\n".join(texts(logged))


def test_a_crash_loop_does_not_spin():
    """Over ten simulated minutes a worker that always dies at once is started a bounded number of times."""
    harness = Harness("[process]\nrestart_delay_max_seconds = 30\n").started_ready()
    dead: set[int] = set()
    for _ in range(600 * 4):
        current = harness.current(1)
        if current.process.pid not in dead:
            dead.add(current.process.pid)
            current.dies(code=1)
        harness.clock.advance(0.25)
    started = sum(spawned.args[-1] == "1" for spawned in harness.spawned)
    assert 20 <= started <= 1 + 7 + 600 // 30  # 0, .5, 1, 2, 4, 8, 16 s, then one per 30 s


def test_a_worker_that_stayed_up_is_restarted_at_once_again():
    """After a crash loop, a worker that ran longer than the cap counts as healthy: its next death restarts at once."""
    harness = Harness("[process]\nrestart_delay_max_seconds = 2\n").started_ready()
    for _ in range(3):
        harness.current(1).dies(code=1)
        harness.clock.advance(2)
    harness.current(1).ready()
    harness.clock.advance(5)
    count = len(harness.spawned)
    harness.current(1).dies(code=1)
    harness.clock.advance(0)
    assert len(harness.spawned) == count + 1


def test_a_late_exit_of_a_replaced_process_changes_nothing():
    """Events of a process that no longer serves its slot are ignored."""
    harness = Harness().started_ready()
    old = harness.current(1)
    old.dies(signal_number=signal.SIGKILL)
    harness.clock.advance(0)
    old.dies(code=0)
    old.ready()
    harness.clock.advance(0)
    assert len(harness.spawned) == 3


# --- heartbeat and watchdog ----------------------------------------------------------------------


def test_a_worker_without_heartbeat_is_killed_and_replaced(logged):
    """A worker silent for heartbeat_timeout_seconds gets SIGKILL; its exit line says why; a new one starts."""
    harness = Harness("[process]\nheartbeat_timeout_seconds = 4\n").started_ready()
    for _ in range(6):
        harness.clock.advance(1)
        harness.current(1).say("WATCHDOG=1")
    assert harness.current(2).process.signals == ["KILL"] and harness.current(1).process.signals == []
    harness.current(2).dies(signal_number=signal.SIGKILL)
    harness.clock.advance(0)
    assert harness.current(2).process.pid == 1002
    lines = "\n".join(texts(logged))
    assert "worker 2 (pid 1001): no heartbeat for 4 s (heartbeat_timeout_seconds); killing it (SIGKILL)" in lines
    assert "worker 2 (pid 1001) killed by SIGKILL (signal 9) (no heartbeat for 4 s" in lines


def test_watchdog_pings_only_while_every_worker_is_alive():
    """WATCHDOG=1 goes out at half of WatchdogSec while all workers beat; a silent worker stops it."""
    environ = {"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": str(os.getpid())}
    harness = Harness("[process]\nheartbeat_timeout_seconds = 2.5\n", environ=environ).started_ready()
    for _ in range(4):
        harness.clock.advance(0.5)
        for index in (1, 2):
            harness.current(index).say("WATCHDOG=1")
    assert len(harness.notified("WATCHDOG=1")) == 2
    for _ in range(8):
        harness.clock.advance(0.5)
        harness.current(1).say("WATCHDOG=1")
    assert len(harness.notified("WATCHDOG=1")) == 4  # at 3 s and 4 s; at 5 s worker 2 is 3 s silent


def test_a_worker_breaking_its_channel_is_killed(logged):
    """Bytes that are not channel messages mean the worker is broken: SIGKILL, then a replacement."""
    harness = Harness().started_ready()
    harness.current(1).protocol.childDataReceived(TO_SUPERVISOR_FD, b"\xff\xff\xff\xffjunk")
    assert harness.current(1).process.signals == ["KILL"]


# --- signals -------------------------------------------------------------------------------------


def test_signals_are_taken_once_the_reactor_runs():
    """SIGTERM and SIGHUP handlers are installed when the reactor runs, not before."""
    harness = Harness()
    harness.supervisor.startService()
    assert harness.signals == {}
    harness.clock.run()
    assert set(harness.signals) == {signal.SIGTERM, signal.SIGHUP}


def test_sighup_reloads_every_worker_between_reloading_and_ready():
    """SIGHUP: RELOADING=1, SIGHUP to each worker, READY=1 only once both finished their reload."""
    harness = Harness().started_ready()
    harness.signal(signal.SIGHUP)
    assert harness.notified("RELOADING=1") and [s.process.signals for s in harness.spawned] == [["HUP"], ["HUP"]]
    harness.spawned[0].say("RELOADING=1", "STATUS=reloading")
    harness.spawned[0].ready()
    assert len(harness.notified("READY=1")) == 1
    harness.spawned[1].say("RELOADING=1", "STATUS=reloading")
    harness.spawned[1].say(
        "READY=1", "STATUS=0 connections (0 WebSocket) on 1 listeners; last reload failed (see the log)"
    )
    ready = harness.notified("READY=1")
    assert len(ready) == 2 and ready[-1][1].endswith("last reload failed in worker 2 (see the log)")


def test_a_worker_dying_during_a_reload_does_not_hold_it_up():
    """The reload's READY=1 comes once the other workers answered, if one died meanwhile."""
    harness = Harness().started_ready()
    harness.signal(signal.SIGHUP)
    harness.spawned[1].dies(signal_number=signal.SIGSEGV)
    harness.spawned[0].ready()
    assert len(harness.notified("READY=1")) == 2


def test_sighup_reaches_a_starting_worker_once_it_is_ready():
    """A worker still starting at SIGHUP gets its SIGHUP when it is ready (before, SIGHUP would kill it)."""
    harness = Harness().start()
    harness.spawned[0].ready()
    harness.signal(signal.SIGHUP)
    assert [s.process.signals for s in harness.spawned] == [["HUP"], []]
    assert harness.notified("RELOADING=1") == []  # not serving yet: systemd hears of no reload
    harness.spawned[1].ready()
    assert harness.spawned[1].process.signals == ["HUP"]


def test_sigterm_drains_every_worker_then_kills_stragglers(logged):
    """SIGTERM: STOPPING=1, SIGTERM to each worker; one not gone drain + grace later gets SIGKILL; nothing restarts."""
    harness = Harness("[limits]\ndrain_timeout_seconds = 3.0\n[process]\nstop_grace_seconds = 1\n").started_ready()
    harness.signal(signal.SIGTERM)
    assert harness.clock.hasStopped and harness.notified("STOPPING=1")
    stopped = harness.supervisor.stopService()
    assert [s.process.signals for s in harness.spawned] == [["TERM"], ["TERM"]]
    harness.spawned[0].dies(code=0)
    harness.clock.advance(3.9)
    assert harness.spawned[1].process.signals == ["TERM"] and not stopped.called
    harness.clock.advance(0.1)
    assert harness.spawned[1].process.signals == ["TERM", "KILL"]
    harness.spawned[1].dies(signal_number=signal.SIGKILL)
    harness.clock.advance(60)
    assert stopped.called and len(harness.spawned) == 2
    assert "worker 2 (pid 1001): still running 4 s after SIGTERM; killing it (SIGKILL)" in texts(logged, LogLevel.error)


def test_sighup_while_stopping_is_ignored():
    """Once shutting down, SIGHUP changes nothing."""
    harness = Harness().started_ready()
    harness.signal(signal.SIGTERM)
    harness.supervisor.stopService()
    harness.signal(signal.SIGHUP)
    assert harness.notified("RELOADING=1") == [] and harness.spawned[0].process.signals == ["TERM"]


def test_stop_cancels_a_pending_restart():
    """A worker waiting for its backoff is not started once the daemon stops."""
    harness = Harness().started_ready()
    for _ in range(2):
        harness.current(1).dies(code=1)
        harness.clock.advance(0)
    harness.supervisor.stopService()
    harness.clock.advance(60)
    assert sum(spawned.args[-1] == "1" for spawned in harness.spawned) == 2
