"""Workers for real: ``[process] workers = 2`` on 127.0.0.1, the main process and its workers as subprocesses.

Which process holds a connection is read from outside, as an operator would: the server end
of each established TCP connection in ``/proc/net/tcp``, matched to the socket inodes in each
worker's ``/proc/PID/fd``. Worker numbers and pids come from the main process's log lines
("worker 2 (pid 1234) ready").
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from tests.integration.support import child_pids, connections_by_process, wait_for_output

REPO_ROOT = Path(__file__).resolve().parents[2]
WORKERS = "[process]\nworkers = 2\n[limits]\ndrain_timeout_seconds = 3.0\nconnection_burst_per_ip = 1000\n"
READY_LINE = re.compile(r"worker (\d+) \(pid (\d+)\) ready")


def start(daemon_factory, text: str = WORKERS):
    """A daemon with two workers, once both are ready."""
    daemon = daemon_factory(text)
    wait_for_output(daemon, "all 2 workers ready")
    return daemon


def worker_pids(daemon) -> dict[int, int]:
    """Worker number -> pid of the process serving as it now (the latest "ready" line of each)."""
    return {int(index): int(pid) for index, pid in READY_LINE.findall(daemon.output())}


def wait_for_new_worker(daemon, index: int, old_pid: int) -> int:
    """The pid of the process that replaced ``old_pid`` as worker ``index``, once it is ready."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        pid = worker_pids(daemon).get(index)
        if pid is not None and pid != old_pid:
            return pid
        time.sleep(0.05)
    pytest.fail(f"worker {index} not replaced\n{daemon.output()}", pytrace=False)


def echo_once(daemon, text: str) -> None:
    """Open a WebSocket, echo one message, close: the port serves."""
    with connect(daemon.ws_url("/echo"), open_timeout=10) as ws:
        ws.send(text)
        assert ws.recv(timeout=10) == text


def open_clients(stack: contextlib.ExitStack, daemon, count: int) -> list[ClientConnection]:
    """``count`` open WebSockets that each echoed once."""
    clients = [stack.enter_context(connect(daemon.ws_url("/echo"), open_timeout=10)) for _ in range(count)]
    for number, client in enumerate(clients):
        client.send(f"hello {number}")
        assert client.recv(timeout=10) == f"hello {number}"
    return clients


def open_clients_on_every_worker(stack: contextlib.ExitStack, daemon, pids, batch: int = 20, most: int = 200):
    """Open batches of echoing WebSockets until every worker holds one (the kernel's spread is uneven).

    Returns the clients and the connections each worker process holds; gives up after ``most``.
    """
    clients: list[ClientConnection] = []
    while True:
        clients += open_clients(stack, daemon, batch)
        held = connections_by_process(daemon.port, list(pids.values()))
        if all(count > 0 for count in held.values()) or len(clients) >= most:
            return clients, held


def test_both_workers_serve_connections_and_the_main_process_none(daemon_factory):
    """100 WebSockets on one port are held by both worker processes, none by the main process; logs say which."""
    daemon = start(daemon_factory)
    pids = worker_pids(daemon)
    assert sorted(pids) == [1, 2] and sorted(child_pids(daemon.process.pid)) == sorted(pids.values())
    with contextlib.ExitStack() as stack:
        open_clients(stack, daemon, 100)
        held = connections_by_process(daemon.port, [*pids.values(), daemon.process.pid])
        print(f"connections per process: {held}")  # the spread, for the README's figure
        assert held[daemon.process.pid] == 0
        assert held[pids[1]] > 0 and held[pids[2]] > 0 and held[pids[1]] + held[pids[2]] == 100
    wait_for_output(daemon, "websocket closed", count=100)
    summaries = [line for line in daemon.output().splitlines() if "websocket closed" in line]
    assert {re.search(r"worker=(\d) websocket closed", line).group(1) for line in summaries} == {"1", "2"}


def test_a_killed_worker_is_replaced_and_the_port_keeps_serving(daemon_factory):
    """SIGKILL on worker 1: the port serves at once (worker 2), a new worker 1 starts, one line says what happened."""
    daemon = start(daemon_factory)
    victim = worker_pids(daemon)[1]
    os.kill(victim, signal.SIGKILL)
    for number in range(20):
        echo_once(daemon, f"during {number}")
    replacement = wait_for_new_worker(daemon, 1, victim)
    assert replacement in child_pids(daemon.process.pid) and victim not in child_pids(daemon.process.pid)
    assert f"worker 1 (pid {victim}) killed by SIGKILL (signal 9) after " in daemon.output()
    assert re.search(
        rf"worker 1 \(pid {victim}\) killed by SIGKILL \(signal 9\) after [\d.]+ s; restarting it now", daemon.output()
    )
    for number in range(20):
        echo_once(daemon, f"after {number}")


def test_sigterm_closes_every_workers_clients_with_1001_and_exits_0(daemon_factory):
    """SIGTERM to the main process: clients on both workers get close 1001, every process exits, status 0."""
    daemon = start(daemon_factory)
    pids = worker_pids(daemon)
    with contextlib.ExitStack() as stack:
        clients, held = open_clients_on_every_worker(stack, daemon, pids)
        assert all(count > 0 for count in held.values()), held
        daemon.process.send_signal(signal.SIGTERM)
        for client in clients:
            with pytest.raises(ConnectionClosed) as closed:
                client.recv(timeout=10)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
    assert daemon.process.wait(15) == 0
    output = daemon.output()
    assert "every worker exited" in output
    for index, pid in pids.items():
        assert f"worker {index} (pid {pid}) exited with status 0" in output
        assert not os.path.exists(f"/proc/{pid}")


def test_sighup_reloads_every_worker(daemon_factory):
    """After a new [limits] and SIGHUP, each worker reloads and holds new connections to the new limit (1009)."""
    daemon = start(daemon_factory)
    config_path = next(daemon.stdout_path.parent.glob("*.toml"))
    config_path.write_text(WORKERS.replace("[limits]\n", "[limits]\nmax_message_bytes = 16\nmax_frame_bytes = 125\n"))
    daemon.process.send_signal(signal.SIGHUP)
    wait_for_output(daemon, "reload done in every worker")
    assert "] worker=1 reload done" in daemon.output() and "] worker=2 reload done" in daemon.output()
    # One at a time until both workers have refused one (new connections spread unevenly), at most 100.
    refused_by: set[str] = set()
    for attempt in range(1, 101):
        with connect(daemon.ws_url("/echo"), open_timeout=10) as ws:
            ws.send("x" * 32)
            with pytest.raises(ConnectionClosed) as closed:
                ws.recv(timeout=10)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
        wait_for_output(daemon, "code=1009", count=attempt)
        refused_by = set(re.findall(r"worker=(\d) websocket closed .* code=1009", daemon.output()))
        if refused_by == {"1", "2"}:
            break
    assert refused_by == {"1", "2"}, daemon.output()


def test_a_hung_worker_is_killed_and_replaced(daemon_factory):
    """A worker that stops (SIGSTOP: no more heartbeats) is killed after heartbeat_timeout_seconds and replaced."""
    daemon = start(daemon_factory, WORKERS.replace("workers = 2\n", "workers = 2\nheartbeat_timeout_seconds = 1.0\n"))
    hung = worker_pids(daemon)[2]
    os.kill(hung, signal.SIGSTOP)
    wait_for_output(daemon, f"worker 2 (pid {hung}): no heartbeat for 1 s (heartbeat_timeout_seconds); killing it")
    replacement = wait_for_new_worker(daemon, 2, hung)
    assert f"worker 2 (pid {hung}) killed by SIGKILL (signal 9) (no heartbeat for 1 s" in daemon.output()
    assert replacement != hung
    echo_once(daemon, "still serving")


def test_workers_exit_when_the_main_process_dies(daemon_factory):
    """If the main process is killed outright, its workers see their channel close, drain and exit."""
    daemon = start(daemon_factory)
    pids = list(worker_pids(daemon).values())
    daemon.process.kill()
    daemon.process.wait(10)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and any(os.path.exists(f"/proc/{pid}") for pid in pids):
        time.sleep(0.05)
    assert not any(os.path.exists(f"/proc/{pid}") for pid in pids), daemon.output()
    assert "the main process closed the channel; shutting down" in daemon.output()


def test_worker_option_by_hand_is_refused():
    """--worker without a main process behind it exits 1 with a line saying it is the main process's option."""
    result = subprocess.run(
        [sys.executable, "-m", "twisted", "wsdaemon", "--worker", "1"],
        cwd=REPO_ROOT,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "--worker is set by the main process for its workers, not by hand" in result.stderr
