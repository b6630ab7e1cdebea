#!/usr/bin/env python3
"""wsdaemon fan-out benchmark: one publisher, 1,000 subscribers, 64-byte messages, three ways in one run.

    python bench/fanout.py                  # 1,000 subscribers, 5 s per setup
    python bench/fanout.py --quick          # 200 subscribers, 2 s per setup (smoke run)

The same C generator (bench/fanout.c, built with ``cc -O2`` into bench/build/) drives:

1. **one process**: the publisher and every subscriber on one daemon;
2. **two workers**: ``[process] workers = 2`` and no ``[broker]``: the connections spread over the
   two workers and the main process relays every message between them;
3. **two instances through Redis**: two daemons sharing a ``redis-server`` (started here on a
   free port, no persistence, stopped by PID); the publisher on the first, the subscribers half
   on each.

It reports deliveries per second (messages received by subscribers), messages published per
second, and publish-to-receive latency p50/p99, prints a Markdown table and writes
bench/results/fanout.json. Traffic goes to 127.0.0.1 only. It needs Linux, ``cc`` and, for the
third setup, Debian's ``redis-server``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
BUILD = BENCH / "build"
RESULTS = BENCH / "results"
HOST = "127.0.0.1"
CHANNEL_PATH = "/chat/bench"

BASE_CONFIG = """\
# Written by bench/fanout.py.
[limits]
max_connections = 20000
max_connections_per_ip = 20000
connection_rate_per_ip = 1000000.0
connection_burst_per_ip = 1000000
drain_timeout_seconds = 2.0
[[endpoints]]
path = "/chat"
handler = "broadcast"
[endpoints.options]
channel_from_path = true
"""


def free_port() -> int:
    """A TCP port on 127.0.0.1 nothing listens on now."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def wait_listening(port: int, process: subprocess.Popen[bytes], what: str, timeout: float = 30.0) -> None:
    """Until ``port`` accepts connections (or ``process`` died)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with status {process.returncode}")
        with socket.socket() as probe:
            if probe.connect_ex((HOST, port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not listen on {port} within {timeout} s")


@contextlib.contextmanager
def running(command: list[str], port: int, what: str, log: Path, settle: float = 0.0) -> Iterator[None]:
    """A server process for the duration of the block, stopped by PID (SIGTERM, then SIGKILL)."""
    with log.open("wb") as output:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT)
    try:
        wait_listening(port, process, what)
        time.sleep(settle)
        yield
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def daemon(
    config: Path, port: int, logs: Path, name: str, settle: float = 0.0
) -> contextlib.AbstractContextManager[None]:
    """``twist wsdaemon`` (as ``python -m twisted wsdaemon``) on 127.0.0.1:port."""
    command = [
        sys.executable,
        "-m",
        "twisted",
        "wsdaemon",
        "--config",
        str(config),
        "--listen",
        f"tcp:{port}:interface={HOST}",
    ]
    return running(command, port, name, logs / f"{name}.log", settle)


def build() -> Path:
    """bench/build/fanout from bench/fanout.c."""
    BUILD.mkdir(exist_ok=True)
    exe = BUILD / "fanout"
    subprocess.run(["cc", "-O2", "-o", str(exe), str(BENCH / "fanout.c")], check=True)
    return exe


def measure(exe: Path, pub_port: int, sub_ports: list[int], options: argparse.Namespace) -> dict[str, Any]:
    """One run of the generator; its JSON line."""
    command = [
        str(exe), "--pub-port", str(pub_port), "--sub-ports", ",".join(map(str, sub_ports)), "--path", CHANNEL_PATH,
        "--subs", str(options.subs), "--size", "64", "--window", str(options.window),
        "--duration", str(options.duration), "--warmup", str(options.warmup),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=options.duration + options.warmup + 120)
    if not done.stdout.strip():
        raise RuntimeError(f"fanout printed nothing: {done.stderr.strip()}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def run_setups(exe: Path, options: argparse.Namespace, work: Path) -> dict[str, dict[str, Any]]:
    """The three setups, one after the other; a setup that cannot run is reported, not fatal."""
    results: dict[str, dict[str, Any]] = {}
    single = work / "single.toml"
    single.write_text(BASE_CONFIG)
    workers = work / "workers.toml"
    workers.write_text(BASE_CONFIG.replace("[limits]", "[process]\nworkers = 2\n[limits]"))
    port = free_port()
    with daemon(single, port, work, "one-process"):
        results["one process"] = measure(exe, port, [port], options)
    port = free_port()
    with daemon(workers, port, work, "two-workers", settle=2.0):
        results["two workers (main process relays)"] = measure(exe, port, [port], options)
    if shutil.which("redis-server") is None:
        results["two instances through Redis"] = {
            "error": "redis-server is not installed (apt-get install redis-server)"
        }
        return results
    redis_port = free_port()
    redis = ["redis-server", "--port", str(redis_port), "--bind", HOST, "--save", "", "--appendonly", "no"]
    broker = work / "broker.toml"
    broker.write_text(BASE_CONFIG + f'[broker]\nurl = "redis://{HOST}:{redis_port}/0"\n')
    first, second = free_port(), free_port()
    with running(redis, redis_port, "redis-server", work / "redis.log"):
        with daemon(broker, first, work, "instance-1"), daemon(broker, second, work, "instance-2"):
            results["two instances through Redis"] = measure(exe, first, [first, second], options)
    return results


def table(results: dict[str, dict[str, Any]], options: argparse.Namespace) -> str:
    """The Markdown table."""
    lines = [
        f"fan-out: 1 publisher, {options.subs} subscribers, 64-byte text messages, window {options.window}",
        "",
        "| setup | deliveries/s | published/s | latency p50 | latency p99 | errors |",
        "| --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for name, figures in results.items():
        if "error" in figures:
            lines.append(f"| {name} | - | - | - | - | {figures['error']} |")
            continue
        lines.append(
            f"| {name} | {figures['deliveries_per_s']:,.0f} | {figures['published_per_s']:,.1f} | "
            f"{figures['p50_us'] / 1000:.1f} ms | {figures['p99_us'] / 1000:.1f} ms | "
            f"{figures['errors'] or 'none'}{' (' + figures['first_error'] + ')' if figures['errors'] else ''} |"
        )
    return "\n".join(lines)


def main() -> int:
    """Build, run the three setups, print the table, write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--subs", type=int, default=1000)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--window", type=int, default=4, help="messages not yet received by every subscriber")
    parser.add_argument("--quick", action="store_true", help="200 subscribers, 2 s per setup")
    options = parser.parse_args()
    if options.quick:
        options.subs, options.duration, options.warmup = 200, 2.0, 0.5
    exe = build()
    with tempfile.TemporaryDirectory(prefix="wsdaemon-fanout-") as folder:
        results = run_setups(exe, options, Path(folder))
    print(table(results, options))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "fanout.json").write_text(json.dumps({"options": vars(options), "results": results}, indent=2))
    return 0 if all("error" not in figures and not figures["errors"] for figures in results.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
