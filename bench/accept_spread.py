#!/usr/bin/env python3
"""How evenly the kernel spreads new connections over two wsdaemon processes: one shared socket or SO_REUSEPORT.

    python bench/accept_spread.py                 # 1,000 connections, 5 runs per mode
    python bench/accept_spread.py --conns 200 --runs 3 --concurrency 1

``shared``: wsdaemon with ``[process] workers = 2``, as it runs: the main process holds one
listening socket, both workers accept from its queue. ``reuseport``: two single-process
wsdaemons, each on its own socket bound to the same port with ``SO_REUSEPORT`` (passed to each
as a systemd-style socket, ``systemd:domain=INET:index=0``), so the kernel picks a socket per
connection by a hash of its addresses. For each run the C load generator opens ``--conns``
connections (``--concurrency`` handshakes at once) and holds them; the connections each
process holds are then read from ``/proc`` (``/proc/net/tcp`` and each process's fds).

Traffic goes to 127.0.0.1 only. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(REPO))

from bench.run import BUILD, HOST, build_c_programs, free_port  # noqa: E402
from tests.integration.support import child_pids, connections_by_process  # noqa: E402

CONFIG = "[limits]\nmax_connections = 20000\nmax_connections_per_ip = 20000\nconnection_rate_per_ip = 1000000.0\nconnection_burst_per_ip = 1000000\n"
# Start a program with the socket on fd 3 and LISTEN_PID = its own pid, as systemd would.
ADOPT = "import os, sys; os.dup2(int(sys.argv[1]), 3); os.environ.update(LISTEN_FDS='1', LISTEN_FDNAMES='spread', LISTEN_PID=str(os.getpid())); os.execv(sys.executable, [sys.executable, *sys.argv[2:]])"


def daemon_argv(config: Path, listen: str, log: Path) -> list[str]:
    return [
        "-m", "twisted", "--log-file", str(log), "--log-level", "warn", "wsdaemon", "--config", str(config), "--listen", listen,
    ]  # fmt: skip


def wait_for(port: int, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((HOST, port), timeout=0.5) as sock:
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                if sock.recv(64).startswith(b"HTTP/1.1 200"):
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"nothing healthy on {port}")


def start_shared(port: int) -> tuple[list[subprocess.Popen[bytes]], list[int]]:
    config = BUILD / "spread-shared.toml"
    config.write_text(CONFIG + "[process]\nworkers = 2\n")
    argv = daemon_argv(config, f"tcp:{port}:interface={HOST}:backlog=1024", BUILD / "spread-shared.log")
    main = subprocess.Popen([sys.executable, *argv], cwd=REPO, stdin=subprocess.DEVNULL)
    try:
        wait_for(port)
        deadline = time.monotonic() + 20
        while len(child_pids(main.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
    except BaseException:
        stop([main])
        raise
    time.sleep(1.0)  # both workers listening
    return [main], child_pids(main.pid)


def stop(processes: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM each server by its pid and wait for it."""
    for process in processes:
        process.send_signal(signal.SIGTERM)
    for process in processes:
        process.wait(timeout=30)


def start_reuseport(port: int) -> tuple[list[subprocess.Popen[bytes]], list[int]]:
    config = BUILD / "spread-reuseport.toml"
    config.write_text(CONFIG)
    processes = []
    for number in range(2):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((HOST, port))
        sock.listen(1024)
        argv = daemon_argv(config, "systemd:domain=INET:index=0", BUILD / f"spread-reuseport-{number}.log")
        command = [sys.executable, "-c", ADOPT, str(sock.fileno()), *argv]
        processes.append(subprocess.Popen(command, cwd=REPO, stdin=subprocess.DEVNULL, pass_fds=(sock.fileno(),)))
        sock.close()
    try:
        wait_for(port)
    except BaseException:
        stop(processes)
        raise
    time.sleep(1.0)
    return processes, [process.pid for process in processes]


def one_run(exe: Path, port: int, pids: list[int], conns: int, concurrency: int) -> list[int]:
    """Open ``conns`` connections, read how many each process holds, let them go."""
    command = [str(exe), "--host", HOST, "--port", str(port), "--mode", "ws", "--scenario", "idle"]
    command += ["--conns", str(conns), "--concurrency", str(concurrency), "--setup-timeout", "120"]
    gen = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert gen.stdout is not None and gen.stdin is not None
    ready = json.loads(next(line for line in gen.stdout if line.startswith("{")))
    time.sleep(0.5)
    held = connections_by_process(port, pids)
    gen.stdin.write("done\n")
    gen.stdin.close()
    gen.wait(timeout=60)
    time.sleep(1.0)
    if ready.get("open") != conns:
        print(f"  only {ready.get('open')} of {conns} connections opened", file=sys.stderr)
    return [held[pid] for pid in pids]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--conns", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=100, help="handshakes in flight at once (default 100)")
    parser.add_argument("--runs", type=int, default=5)
    options = parser.parse_args()
    BUILD.mkdir(exist_ok=True)
    exe = build_c_programs()
    rows = []
    for mode, start in (("shared socket (workers = 2)", start_shared), ("SO_REUSEPORT (2 processes)", start_reuseport)):
        port = free_port()
        processes, pids = start(port)
        try:
            splits = [one_run(exe, port, pids, options.conns, options.concurrency) for _ in range(options.runs)]
        finally:
            stop(processes)
        shares = [max(split) / sum(split) for split in splits if sum(split)]
        rows.append((mode, splits, statistics.mean(shares), max(shares)))
        print(f"{mode}: {splits}", file=sys.stderr)
    print(
        f"{options.conns} connections per run, {options.concurrency} handshakes at once, {options.runs} runs per mode\n"
    )
    print("| mode | connections per process, each run | busier process's share: mean | worst |")
    print("|---|---|---|---|")
    for mode, splits, mean, worst in rows:
        listed = ", ".join("/".join(str(count) for count in split) for split in splits)
        print(f"| {mode} | {listed} | {mean * 100:.1f}% | {worst * 100:.1f}% |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
