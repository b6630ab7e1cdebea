#!/usr/bin/env python3
"""wsdaemon soak: 10,000 connections and a million messages, echo and broadcast, RSS sampled every second.

    python bench/soak.py                                  # the full soak (a few minutes)
    python bench/soak.py --conns 1000 --messages 100000   # a reduced run (well under a minute)

Each scenario gets a fresh daemon (``python -m twisted wsdaemon``, pinned to core 0) and the C
load generator of bench/run.py (``loadgen.c``, pinned to core 1):

* **echo**: ``--conns`` connections, each with one 64-byte message in flight, until
  ``--messages`` echoes came back (checked byte for byte by the load generator);
* **broadcast**: ``--conns`` - 1 members of one channel held open by the load generator's
  idle mode (which checks every message it gets), and one publisher (the ``websockets``
  client) sending ``--publish-rate`` messages a second, which the daemon delivers to every
  member and back to the publisher, until ``--messages`` deliveries were made. The rate is
  fixed because a broadcast faster than the members read is, by design, an overload: the
  daemon then closes the members that fall behind (``overflow = "close"``).

For echo a short calibration run measures the rate. Each main run lasts long enough for the
target, and at least ``--min-seconds``. The daemon's resident memory (VmRSS) is read once a second throughout; after the
first ``--warmup-seconds`` of the main run the samples must stay *flat*: the report gives
their first, last, lowest and highest values, the drift (last minus first) and the least
squares slope, and calls the run flat when the drift is within 5 % (at least 4 MiB) and the
slope under 1 MiB a minute. It reports; it asserts nothing and is not part of the test suite.
Traffic goes to 127.0.0.1 only; every process it starts is stopped before it exits.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from run import (
    BUILD,
    HOST,
    LOADGEN_CORE,
    LOGS,
    RESULTS,
    SERVER_CORE,
    build_c_programs,
    free_port,
    pinned,
    rss_kib,
    wait_listening,
)

SOAK_CONFIG = """\
# Written by bench/soak.py: room for the soak's connections, all from 127.0.0.1.
[limits]
max_connections = 20000
max_connections_per_ip = 20000
connection_rate_per_ip = 1000000.0
connection_burst_per_ip = 1000000

[[endpoints]]
path = "/echo"
handler = "echo"

[[endpoints]]
path = "/chat"
handler = "broadcast"
"""
MIB_KIB = 1024


class Daemon:
    """A fresh wsdaemon for one scenario, with its RSS sampled once a second by a thread."""

    def __init__(self, name: str) -> None:
        BUILD.mkdir(exist_ok=True)
        LOGS.mkdir(parents=True, exist_ok=True)
        config = BUILD / "soak.toml"
        config.write_text(SOAK_CONFIG)
        self.port = free_port()
        self.log = open(LOGS / f"soak-{name}.log", "wb")  # closed in stop()
        command = [sys.executable, "-m", "twisted", "--log-level", "warn", "wsdaemon", "--config", str(config)]
        command += ["--listen", f"tcp:{self.port}:interface={HOST}:backlog=4096"]
        self.proc = subprocess.Popen(
            pinned(command, SERVER_CORE), stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        self.samples: list[tuple[float, int, str]] = []  # (seconds since start, RSS KiB, phase)
        self.phase = "idle"
        self.started = time.monotonic()
        self._stop = threading.Event()
        try:
            wait_listening(self.port, self.proc)
        except BaseException:
            self.stop()
            raise
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()

    def _sample(self) -> None:
        while not self._stop.is_set():
            try:
                self.samples.append((time.monotonic() - self.started, rss_kib(self.proc.pid), self.phase))
            except (OSError, RuntimeError):
                return
            self._stop.wait(1.0)

    def stop(self) -> None:
        """SIGTERM (the daemon drains), then SIGKILL if it lingers."""
        self._stop.set()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def loadgen(exe: Path, port: int, args: list[str], timeout: float) -> dict[str, Any]:
    """Run the load generator to its end; its last JSON line."""
    command = pinned([str(exe), "--host", HOST, "--port", str(port), *args], LOADGEN_CORE)
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise RuntimeError(f"load generator printed no result (status {done.returncode}): {done.stderr[:300]}")
    return dict(json.loads(lines[-1]))


def echo_args(conns: int, size: int, seconds: float, path: str = "/echo") -> list[str]:
    return [
        "--path", path, "--scenario", "echo", "--conns", str(conns), "--inflight", "1", "--size", str(size),
        "--duration", f"{seconds:.1f}", "--warmup", "0", "--concurrency", "500", "--setup-timeout", "180",
    ]  # fmt: skip


def run_echo(exe: Path, options: argparse.Namespace) -> dict[str, Any]:
    """The echo scenario: calibrate, then run until --messages echoes came back."""
    daemon = Daemon("echo")
    try:
        daemon.phase = "calibration"
        calibration = loadgen(exe, daemon.port, echo_args(options.conns, options.size, 5.0), 600)
        rate = max(calibration["msgs_per_s"], 1.0)
        seconds = min(options.max_seconds, max(options.min_seconds, options.messages / rate * 1.15))
        daemon.phase, main_started = "main", time.monotonic() - daemon.started
        main = loadgen(exe, daemon.port, echo_args(options.conns, options.size, seconds), seconds + 600)
        daemon.phase = "after"
        time.sleep(2)
    finally:
        daemon.stop()
    main["errors"] += calibration["errors"]
    main["first_error"] = main["first_error"] or calibration["first_error"]
    return report("echo", daemon, main_started, options, main["open"], main["msgs_total"], main)


def publish(port: int, size: int, rate: float, seconds: float) -> dict[str, Any]:
    """The broadcast publisher: ``rate`` messages a second for ``seconds``, each awaited back (its own copy)."""
    from websockets.sync.client import connect

    payload = "".join(chr(ord("a") + i % 26) for i in range(size))  # what the members' load generator checks
    sent = 0
    started = time.monotonic()
    with connect(f"ws://{HOST}:{port}/chat", proxy=None, max_size=None, compression=None, open_timeout=60) as ws:
        while (elapsed := time.monotonic() - started) < seconds:
            ws.send(payload)
            ws.recv(60)
            sent += 1
            time.sleep(max(0.0, sent / rate - (time.monotonic() - started)))
    return {"published": sent, "seconds": elapsed}


def run_broadcast(exe: Path, options: argparse.Namespace) -> dict[str, Any]:
    """The broadcast scenario: --conns - 1 members held open, one publisher, until --messages deliveries."""
    daemon = Daemon("broadcast")
    members_args = ["--path", "/chat", "--scenario", "idle", "--conns", str(options.conns - 1)]
    members_args += ["--size", str(options.size), "--concurrency", "500", "--setup-timeout", "180"]
    command = pinned([str(exe), "--host", HOST, "--port", str(daemon.port), *members_args], LOADGEN_CORE)
    members = subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert members.stdout is not None and members.stdin is not None
        ready = json.loads(next(line for line in members.stdout if line.startswith("{")))
        fanout = int(ready["open"]) + 1
        seconds = min(options.max_seconds, max(options.min_seconds, options.messages / (fanout * options.publish_rate)))
        daemon.phase, main_started = "main", time.monotonic() - daemon.started
        main = publish(daemon.port, options.size, options.publish_rate, seconds)
        daemon.phase = "after"
        time.sleep(2)  # the last deliveries reach the members
        members.stdin.write("done\n")
        members.stdin.close()
        done = json.loads(next(line for line in members.stdout if line.startswith("{")))
        members.wait(60)
    finally:
        if members.poll() is None:
            members.kill()
            members.wait()
        daemon.stop()
    figures = {"seconds": main["seconds"], "errors": done["errors"], "first_error": done["first_error"]}
    extra = {"members_open": ready["open"], "members_failed": ready["failed"], "published": main["published"]}
    deliveries = int(done["msgs_total"]) + main["published"]
    return report("broadcast", daemon, main_started, options, fanout, deliveries, figures, extra)


def slope_kib_per_minute(points: list[tuple[float, int]]) -> float:
    """Least-squares slope of RSS over time."""
    if len(points) < 2:
        return 0.0
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_r = sum(r for _, r in points) / n
    var = sum((t - mean_t) ** 2 for t, _ in points)
    return 60 * sum((t - mean_t) * (r - mean_r) for t, r in points) / var if var else 0.0


def report(
    name: str,
    daemon: Daemon,
    main_started: float,
    options: argparse.Namespace,
    conns: int,
    messages: int,
    main: dict[str, Any],
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Figures of one scenario: messages, rate, and the RSS samples after warm-up."""
    settled = [
        (t, rss) for t, rss, phase in daemon.samples if phase == "main" and t >= main_started + options.warmup_seconds
    ]
    values = [rss for _, rss in settled] or [0]
    drift = values[-1] - values[0]
    slope = slope_kib_per_minute(settled)
    flat = abs(drift) <= max(0.05 * values[0], 4 * MIB_KIB) and abs(slope) < MIB_KIB
    return {
        "scenario": name,
        "connections": conns,
        "messages": messages,
        "seconds": main["seconds"],
        "messages_per_s": messages / main["seconds"] if main["seconds"] else None,
        "errors": main["errors"],
        "first_error": main["first_error"],
        "rss_first_kib": values[0],
        "rss_last_kib": values[-1],
        "rss_min_kib": min(values),
        "rss_max_kib": max(values),
        "rss_drift_kib": drift,
        "rss_slope_kib_per_min": round(slope, 1),
        "settled_samples": len(settled),
        "flat": flat,
        "samples": daemon.samples,
        **(extra or {}),
    }


def markdown(results: list[dict[str, Any]]) -> str:
    """The README table."""
    lines = [
        "| scenario | connections | messages | msgs/s | RSS after warm-up (first → last, min-max) | drift | slope | flat |",
        "|---|---:|---:|---:|---|---:|---:|---|",
    ]
    for r in results:
        mib = lambda kib: f"{kib / MIB_KIB:.1f}"  # noqa: E731
        lines.append(
            f"| {r['scenario']} | {r['connections']:,} | {r['messages']:,} | {r['messages_per_s']:,.0f} | "
            f"{mib(r['rss_first_kib'])} → {mib(r['rss_last_kib'])} MiB ({mib(r['rss_min_kib'])}-{mib(r['rss_max_kib'])}) | "
            f"{r['rss_drift_kib'] / MIB_KIB:+.1f} MiB | {r['rss_slope_kib_per_min'] / MIB_KIB:+.2f} MiB/min | "
            f"{'yes' if r['flat'] else 'NO'} |"
        )
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--conns", type=int, default=10_000, help="connections (echo) or members + publisher (broadcast)"
    )
    parser.add_argument("--messages", type=int, default=1_000_000, help="echoes, or deliveries, per scenario")
    parser.add_argument("--size", type=int, default=64, help="message size in bytes")
    parser.add_argument("--min-seconds", type=float, default=60.0, help="shortest main run per scenario")
    parser.add_argument("--publish-rate", type=float, default=20.0, help="broadcast messages published per second")
    parser.add_argument("--warmup-seconds", type=float, default=10.0, help="main-run seconds before RSS must be flat")
    parser.add_argument("--max-seconds", type=float, default=900.0, help="longest main run per scenario")
    parser.add_argument("--only", choices=["echo", "broadcast"], help="run one scenario")
    parser.add_argument("--output", type=Path, default=RESULTS / "soak.json", help="where the JSON report goes")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    options = parse_args(argv)
    exe = build_c_programs()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = options.conns + 1000
    if soft < want:  # the daemon and the load generator inherit it
        resource.setrlimit(resource.RLIMIT_NOFILE, (want if hard == resource.RLIM_INFINITY else min(want, hard), hard))
    results = []
    for name, run in (("echo", run_echo), ("broadcast", run_broadcast)):
        if options.only in (None, name):
            print(f"soak: {name}, {options.conns:,} connections, {options.messages:,} messages ...", file=sys.stderr)
            results.append(run(exe, options))
    options.output.parent.mkdir(parents=True, exist_ok=True)
    options.output.write_text(json.dumps(results, indent=1))
    print(markdown(results))
    for r in results:
        if r["errors"]:
            print(f"soak: {r['scenario']}: load generator errors: {r['first_error']}")
    print(f"(samples and figures: {options.output})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
