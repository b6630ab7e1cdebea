#!/usr/bin/env python3
"""wsdaemon benchmark: one command that runs every server against the same C load generator.

    python bench/run.py                         # full run (about 9 minutes on a quiet machine)
    python bench/run.py --quick                 # smoke run (< 60 s)
    python bench/run.py --quick --only wsdaemon,tcp   # < 30 s
    python bench/run.py --tls                   # every server over TLS (wss://): the same scenarios
    python bench/run.py --baseline ad42b3c --only wsdaemon   # this tree against an earlier commit

It compiles bench/loadgen.c with the system compiler (``cc -O2``) into
bench/build/, starts each server in turn on 127.0.0.1 pinned to core 0, drives
it from the load generator pinned to core 1, interleaves rounds (round 1: every
server, round 2: every server, ...), keeps the best figure of each server over
the rounds (``--stat median`` for the median), prints a Markdown table and
writes bench/results/latest.json. It installs nothing: a missing alternative is
reported with the pip command that brings it (see bench/requirements.txt).

Traffic goes to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
BUILD = BENCH / "build"
LOGS = BUILD / "logs"
RESULTS = BENCH / "results"
HOST = "127.0.0.1"
TIMES = "\u00d7"  # the multiplication sign of "3 conns x 1" and of ratios
SERVER_CORE = 0
LOADGEN_CORE = 1

WSDAEMON_CONFIG = """\
# Written by bench/run.py: limits raised so the benchmark's loads are accepted.
[limits]
max_message_bytes = 4194304
max_frame_bytes = 4194304
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
[endpoints.options]
channel_from_path = true
"""


# ------------------------------------------------------------------------------------- servers

ALL_SCENARIOS = ("echo64", "pipe64", "big", "handshake", "idle", "fanout64", "fanout4k")
# small messages, handshakes and fan-out: where cores matter
WORKER_SCENARIOS = ("echo64", "pipe64", "handshake", "fanout64")
FANOUT_PATH = "/chat/bench"  # every server's fan-out group (wsdaemon: a broadcast channel)


#: Set by main(): the certificate and key every server listens with under --tls (None: plain TCP).
TLS_FILES: tuple[Path, Path] | None = None


@dataclass(frozen=True)
class Server:
    """One server under test."""

    name: str
    title: str
    mode: str  # "ws" or "raw" (the load generator's framing)
    modules: tuple[str, ...]  # imports it needs
    packages: tuple[str, ...]  # what pip installs them
    workers: int = 0  # wsdaemon with [process] workers = N (the workers comparison); 0: not that
    scenarios: tuple[str, ...] = ALL_SCENARIOS  # which scenarios it runs
    source: Path | None = None  # --baseline: the exported tree of an earlier commit, imported first

    @property
    def is_wsdaemon(self) -> bool:
        """wsdaemon itself (any flavour): started through twist with a config file."""
        return (
            self.name in ("wsdaemon", "wsdaemon-uvloop", "wsdaemon-stdssl")
            or bool(self.workers)
            or self.source is not None
        )

    def environment(self) -> dict[str, str] | None:
        """The child's environment: a baseline tree goes first on PYTHONPATH, so its wsdaemon is imported."""
        if self.source is None:
            return None
        return {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(self.source), os.environ.get("PYTHONPATH")])),
        }

    @property
    def pinned(self) -> bool:
        """Pinned to the server core; the workers comparison spreads server and generator over every core."""
        return self.workers == 0

    def command(self, port: int, options: argparse.Namespace, log_path: Path) -> list[str]:
        py = sys.executable
        servers = BENCH / "servers"
        tls = ["--tls", str(TLS_FILES[0]), str(TLS_FILES[1])] if TLS_FILES else []
        if self.is_wsdaemon:
            entry = ["-m", "twisted"]
            if self.name == "wsdaemon-uvloop":
                entry = [str(servers / "wsdaemon_uvloop.py")]
            elif self.name == "wsdaemon-stdssl":
                entry = [str(servers / "wsdaemon_stdlib_tls.py"), str(TLS_FILES[0]), str(TLS_FILES[1])]
            config = BUILD / (f"wsdaemon-w{self.workers}.toml" if self.workers else "wsdaemon.toml")
            listen = f"tcp:{port}:interface={HOST}:backlog=1024"
            text = wsdaemon_config(self.workers, older=self.source is not None and not knows_newer_keys(self.source))
            if self.source is not None:
                config = BUILD / "wsdaemon-baseline.toml"
                config.write_text(text)
            if TLS_FILES:  # wsdaemon's own TLS listener, as the README configures it, not Twisted's ssl: endpoint
                config = BUILD / f"{config.stem}-tls-{port}.toml"
                config.write_text(text + tls_listener(listen, *TLS_FILES))
            return [
                py, *entry,
                "--log-file", str(log_path.with_suffix(".twist.log")),
                "--log-level", options.wsdaemon_log_level,
                "wsdaemon",
                "--config", str(config),
                *([] if TLS_FILES else ["--listen", listen]),
            ]  # fmt: skip
        if self.name == "autobahn":
            return [py, str(servers / "autobahn_server.py"), "--port", str(port), *tls]
        if self.name == "twisted-ws":
            return [py, str(servers / "twisted_ws_server.py"), "--port", str(port), *tls]
        if self.name == "websockets":
            return [py, str(servers / "websockets_server.py"), "--port", str(port), *tls]
        if self.name == "websockets-uvloop":
            return [py, str(servers / "websockets_server.py"), "--port", str(port), "--uvloop", *tls]
        if self.name == "tcp":
            return [py, str(servers / "tcp_echo_server.py"), "--port", str(port), *tls]
        if self.name == "c-tcp":
            return [str(BUILD / "c_echo"), str(port)]
        raise ValueError(self.name)


#: Keys newer than some commits a ``--baseline`` may name; an older daemon refuses a key it does not know.
NEWER_KEYS = ("connection_rate_per_ip", "connection_burst_per_ip")


def knows_newer_keys(tree: Path) -> bool:
    """Whether the wsdaemon in ``tree`` (a ``--baseline`` export) has the keys of :data:`NEWER_KEYS`."""
    limits = tree / "wsdaemon" / "core" / "limits.py"
    return limits.exists() and all(key in limits.read_text() for key in NEWER_KEYS)


def wsdaemon_config(workers: int, older: bool = False) -> str:
    """The benchmark's wsdaemon config: limits raised, and ``[process] workers`` for the workers comparison.

    For an ``older`` baseline the keys in :data:`NEWER_KEYS` are left out (its daemon would refuse them,
    and it has no such limits to raise).
    """
    text = WSDAEMON_CONFIG + (f"[process]\nworkers = {workers}\n" if workers else "")
    if older:
        text = "".join(line for line in text.splitlines(keepends=True) if not line.startswith(NEWER_KEYS))
    return text


def tls_listener(endpoint: str, certificate: Path, key: Path) -> str:
    """A ``[[listeners]]`` table with wsdaemon's own TLS on ``endpoint``."""
    return (
        f'\n[[listeners]]\nendpoint = "{endpoint}"\ntls = true\ncertificate = "{certificate}"\nprivate_key = "{key}"\n'
    )


def build_speedups(tree: Path) -> None:
    """Compile ``tree``'s ``_speedups.c`` (once): without it a baseline runs the pure-Python masking.

    ``git archive`` exports sources only, and the fallback made a baseline's 1 MiB echo look half
    as fast as it is, so every before/after on large messages flattered the newer tree.
    """
    core = tree / "wsdaemon" / "core"
    if not (core / "_speedups.c").exists() or any(core.glob("_speedups*.so")):
        return
    # This repository's setup.py defines the extension; run from the tree, it builds the tree's source in place.
    build = [sys.executable, str(BENCH.parent / "setup.py"), "-q", "build_ext", "--inplace"]
    done = subprocess.run(build, cwd=tree, capture_output=True, text=True, check=False)
    if done.returncode != 0 or not any(core.glob("_speedups*.so")):
        sys.exit(f"bench: could not build the C accelerator of {tree}: {done.stderr.strip()[-300:]}")


def baseline_server(ref: str) -> Server:
    """wsdaemon at an earlier commit ``ref``, exported with ``git archive`` into bench/build/ (once per commit)."""
    repo = BENCH.parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "--short", f"{ref}^{{commit}}"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        sys.exit(f"bench: --baseline {ref}: not a commit of {repo}")
    tree = BUILD / f"baseline-{commit}"
    if not (tree / "wsdaemon" / "__init__.py").exists():
        tree.mkdir(parents=True, exist_ok=True)
        folders = ["wsdaemon", "twisted"]
        # The plugin descriptors moved from twisted/plugins to wsdaemon_plugins; older commits have none.
        has_plugins = ["git", "-C", str(repo), "cat-file", "-e", f"{commit}:wsdaemon_plugins"]
        if subprocess.run(has_plugins, capture_output=True, check=False).returncode == 0:
            folders.append("wsdaemon_plugins")
        archive = subprocess.run(["git", "-C", str(repo), "archive", commit, *folders], capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", str(tree)], input=archive.stdout, check=True)
    build_speedups(tree)
    return Server(f"wsdaemon@{commit}", f"wsdaemon at {commit}", "ws", ("wsdaemon",), ("-e .",), source=tree)


def make_tls_files() -> tuple[Path, Path]:
    """A throwaway self-signed certificate for localhost and 127.0.0.1 in bench/build/tls/ (made once)."""
    folder = BUILD / "tls"
    cert, key = folder / "cert.pem", folder / "key.pem"
    if cert.exists() and key.exists():
        return cert, key
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    private = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address(HOST))]),
            critical=False,
        )
        .sign(private, hashes.SHA256())
    )
    folder.mkdir(parents=True, exist_ok=True)
    key.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return cert, key


SERVERS = [
    Server("wsdaemon", "wsdaemon", "ws", ("wsdaemon", "twisted"), ("-e .",)),
    Server("autobahn", "Autobahn (Twisted)", "ws", ("autobahn.twisted.websocket",), ("autobahn",)),
    Server("twisted-ws", "twisted.web.websocket", "ws", ("twisted.web.websocket", "wsproto"), ("wsproto",)),
    Server("websockets", "websockets (asyncio)", "ws", ("websockets.asyncio.server",), ("websockets",)),
    Server(
        "websockets-uvloop",
        "websockets (uvloop)",
        "ws",
        ("websockets.asyncio.server", "uvloop"),
        ("websockets", "uvloop"),
    ),
    Server("tcp", "plain Twisted TCP echo", "raw", ("twisted",), ("twisted",)),
    # Not the default: wsdaemon itself on Twisted's asyncio reactor over uvloop (the reactor question).
    Server(
        "wsdaemon-uvloop", "wsdaemon on the asyncio reactor (uvloop)", "ws", ("wsdaemon", "uvloop"), ("-e .", "uvloop")
    ),
    # An experiment, only with --tls and only when named in --only: wsdaemon with Python's ssl module
    # doing its TLS instead of pyOpenSSL under Twisted's TLS protocol (what the wss targets would take).
    Server("wsdaemon-stdssl", "wsdaemon, TLS by Python's ssl (experiment)", "ws", ("wsdaemon", "ssl"), ("-e .",)),
    # The workers comparison: wsdaemon with [process] workers = 1 and = 2, server and load generator on both cores.
    Server("wsdaemon-1w", "wsdaemon, workers = 1", "ws", ("wsdaemon",), ("-e .",), 1, WORKER_SCENARIOS),
    Server("wsdaemon-2w", "wsdaemon, workers = 2", "ws", ("wsdaemon",), ("-e .",), 2, WORKER_SCENARIOS),
    # Not a competitor: a C epoll echo that shows what the load generator itself can drive.
    Server("c-tcp", "C epoll TCP echo (load generator check)", "raw", (), ()),
]
CHECK_ONLY = {"c-tcp"}
#: Run only when named in --only (and, for this one, only over TLS).
EXPERIMENTS = {"wsdaemon-stdssl"}
BY_NAME = {server.name: server for server in SERVERS}


def missing_modules(server: Server) -> list[str]:
    """The imports a server needs that this Python cannot do (checked in a child, so nothing is kept)."""
    probe = "import importlib, sys\nfor m in sys.argv[1:]:\n    try: importlib.import_module(m)\n    except Exception: print(m)"
    out = subprocess.run([sys.executable, "-c", probe, *server.modules], capture_output=True, text=True, check=False)
    return out.stdout.split()


# ----------------------------------------------------------------------------------- scenarios


@dataclass(frozen=True)
class Scenario:
    key: str
    title: str
    args: tuple[str, ...]


SCENARIOS = [
    Scenario("echo64", f"(1) echo 64 B text, 100 conns {TIMES} 1 in flight", ("--scenario", "echo", "--conns", "100", "--inflight", "1", "--size", "64")),
    Scenario("pipe64", f"(2) echo 64 B text, 10 conns {TIMES} 32 in flight", ("--scenario", "echo", "--conns", "10", "--inflight", "32", "--size", "64")),
    Scenario("big", f"(3) echo 1 MiB binary, 4 conns {TIMES} 1 in flight", ("--scenario", "echo", "--conns", "4", "--inflight", "1", "--size", "1048576", "--binary")),
    Scenario("handshake", "(4) open + handshake + close, 50 at once", ("--scenario", "handshake", "--conns", "50")),
]  # fmt: skip
IDLE_TITLE = "(5) memory per idle connection"


@dataclass(frozen=True)
class FanOut:
    """A broadcast scenario: one publisher, ``subscribers`` members, run by fanout.c (every message checked)."""

    key: str
    title: str
    subscribers: int
    size: int


FANOUTS = [
    FanOut("fanout64", "(6) broadcast, 1 publisher → 1,000 subscribers, 64 B", 1000, 64),
    FanOut("fanout4k", "(7) broadcast, 1 publisher → 100 subscribers, 4 KiB", 100, 4096),
]


# ------------------------------------------------------------------------------ process helpers


def pinned(cmd: list[str], core: int | str | None) -> list[str]:
    """The command run on one core (or a "0,1" list) only, through taskset (None: as it is)."""
    if core is None:
        return cmd
    return ["taskset", "-c", str(core), *cmd]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def wait_listening(port: int, proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with status {proc.returncode} before listening")
        try:
            with socket.create_connection((HOST, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"server did not listen on {HOST}:{port} within {timeout:.0f} s")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc/PID/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def process_tree(pid: int) -> list[int]:
    """A process and its descendants (a wsdaemon main process and its workers), from /proc."""
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        try:
            todo.extend(int(child) for child in Path(f"/proc/{current}/task/{current}/children").read_text().split())
        except OSError:
            pass
    return tree


def tree_cpu_seconds(pid: int) -> float:
    """utime + stime of a process and of its descendants (all of a server's processes)."""
    total = 0.0
    for member in process_tree(pid):
        try:
            total += cpu_seconds(member)
        except OSError:  # exited meanwhile
            pass
    return total


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def core_ticks() -> dict[int, tuple[int, int]]:
    """Per core: (busy, total) jiffies from /proc/stat; busy includes softirq, where loopback TCP work is done."""
    out = {}
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("cpu") and line[3] != " ":
            name, *values = line.split()
            numbers = [int(v) for v in values[:8]]
            idle = numbers[3] + numbers[4]
            out[int(name[3:])] = (sum(numbers) - idle, sum(numbers))
    return out


def core_busy(before: dict[int, tuple[int, int]], after: dict[int, tuple[int, int]], core: int | None) -> float | None:
    if core is None or core not in before:
        return None
    busy = after[core][0] - before[core][0]
    total = after[core][1] - before[core][1]
    return busy / total if total else None


def process_cpu(exclude: set[int]) -> dict[int, float]:
    """CPU seconds used so far by each user process but ours (``exclude``): other work on a shared machine."""
    out = {}
    tick = os.sysconf("SC_CLK_TCK")
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) in exclude:
            continue
        try:
            fields = Path(entry.path, "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[1] in ("0", "2"):  # kernel threads (kthreadd's children)
            continue
        out[int(entry.name)] = (int(fields[11]) + int(fields[12])) / tick
    return out


def foreign_cpu(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds others used between two snapshots (processes that ended meanwhile are not counted)."""
    return sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items())


def wait_quiet(max_wait: float) -> float:
    """Wait (bounded) until other processes leave the cores mostly idle; returns the last busy share of both cores."""
    deadline = time.monotonic() + max_wait
    while True:
        before = core_ticks()
        time.sleep(0.5)
        after = core_ticks()
        busy = sum(after[c][0] - before[c][0] for c in after) / max(1, sum(after[c][1] - before[c][1] for c in after))
        if busy < 0.10 or time.monotonic() > deadline:
            return busy


def wait_for_log(running: RunningServer, text: str, timeout: float = 30.0) -> None:
    """Wait until the server's twist log says ``text`` (e.g. that every worker is ready)."""
    log = running.log_path.with_suffix(".twist.log")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.exists() and text in log.read_text(errors="replace"):
            return
        if running.proc.poll() is not None:
            break
        time.sleep(0.05)
    running.stop()
    raise RuntimeError(f"server did not log {text!r} within {timeout:.0f} s")


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


class RunningServer:
    """A server process started for one round, stopped by its own pid."""

    def __init__(self, server: Server, options: argparse.Namespace, round_no: int, core: int | None) -> None:
        self.server = server
        self.port = free_port()
        self.log_path = LOGS / f"{server.name}-round{round_no}.log"
        self.log = open(self.log_path, "wb")  # closed in stop()
        self.proc = subprocess.Popen(
            pinned(server.command(self.port, options, self.log_path), core),
            stdout=self.log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=BUILD,
            env=server.environment(),
        )
        try:
            wait_listening(self.port, self.proc)
        except BaseException:
            self.stop()
            raise

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


# ------------------------------------------------------------------------------ load generator


def build_c_programs() -> Path:
    """Compile loadgen.c and c_echo.c with the system compiler (cc -O2) into bench/build/."""
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if not cc:
        sys.exit("bench: no C compiler found (cc, gcc or clang); install one (Debian: apt-get install gcc)")
    BUILD.mkdir(exist_ok=True)
    for name, libraries in (("loadgen", ["-lssl", "-lcrypto"]), ("c_echo", []), ("fanout", [])):
        exe = BUILD / name
        source = BENCH / f"{name}.c"
        if not exe.exists() or exe.stat().st_mtime < source.stat().st_mtime:
            built = subprocess.run([cc, "-O2", "-Wall", "-o", str(exe), str(source), *libraries], check=False)
            if built.returncode:
                hint = " (it needs OpenSSL's headers: apt-get install libssl-dev)" if libraries else ""
                sys.exit(f"bench: compiling {source.name} failed{hint}")
    return BUILD / "loadgen"


#: Set by main(): ["--tls"] under --tls, so every load generator run speaks TLS.
LOADGEN_FLAGS: list[str] = []


class LoadgenError(RuntimeError):
    pass


def run_loadgen(exe: Path, port: int, mode: str, args: list[str], core: int | None, timeout: float) -> dict[str, Any]:
    cmd = [str(exe), "--host", HOST, "--port", str(port), "--mode", mode, *LOADGEN_FLAGS, *args]
    try:
        out = subprocess.run(pinned(cmd, core), capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as error:
        raise LoadgenError(f"load generator timed out after {timeout:.0f} s: {' '.join(cmd)}") from error
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise LoadgenError(f"load generator printed no result (status {out.returncode}): {out.stderr.strip()[:300]}")
    return dict(json.loads(lines[-1]))


# ------------------------------------------------------------------------------------- measuring


def measure_idle(exe: Path, running: RunningServer, conns: int, core: int | None, settle: float) -> dict[str, Any]:
    """Open ``conns`` idle connections; the server's RSS growth divided by the connections held."""
    pid = running.pid
    time.sleep(settle)
    fds_before = open_fds(pid)
    rss_before = rss_kib(pid)
    cmd = [
        str(exe), "--host", HOST, "--port", str(running.port), "--mode", running.server.mode,
        "--scenario", "idle", "--conns", str(conns), "--concurrency", "100", "--setup-timeout", "120",
        *LOADGEN_FLAGS,
    ]  # fmt: skip
    gen = subprocess.Popen(
        pinned(cmd, core), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert gen.stdout is not None and gen.stdin is not None
    started = time.monotonic()
    ready: dict[str, Any] = {}
    for line in gen.stdout:
        if line.startswith("{"):
            ready = json.loads(line)
            break
    if not ready:
        gen.kill()
        gen.wait()
        raise LoadgenError("idle load generator printed nothing")
    # Let the server finish with the last handshakes, then wait until its RSS stops moving.
    time.sleep(settle)
    rss_after = rss_kib(pid)
    for _ in range(20):
        time.sleep(0.25)
        now = rss_kib(pid)
        if abs(now - rss_after) < 64:
            rss_after = max(rss_after, now)
            break
        rss_after = now
    fds_held = open_fds(pid) - fds_before
    gen.stdin.write("done\n")
    gen.stdin.close()
    try:
        gen.wait(timeout=30)
    except subprocess.TimeoutExpired:
        gen.kill()
        gen.wait()
    # Wait (bounded) until the server has let the connections go.
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and open_fds(pid) > fds_before + 5:
        time.sleep(0.1)
    opened = int(ready.get("open", 0))
    return {
        "conns": conns,
        "open": opened,
        "failed": int(ready.get("failed", 0)),
        "errors": int(ready.get("errors", 0)),
        "first_error": ready.get("first_error", ""),
        "setup_seconds": ready.get("seconds"),
        "server_fds_held": fds_held,
        "rss_before_kib": rss_before,
        "rss_after_kib": rss_after,
        "kib_per_conn": (rss_after - rss_before) / opened if opened else None,
        "elapsed": time.monotonic() - started,
    }


DISTURBED = 0.10  # cores used by other processes during a scenario above which it counts as disturbed


def disturbed(figures: dict[str, Any]) -> bool:
    return float(figures.get("foreign_cpu") or 0.0) >= DISTURBED


def run_scenario(
    exe: Path,
    running: RunningServer,
    scenario: Scenario,
    options: argparse.Namespace,
    cores: tuple[int | None, int | None],
) -> dict[str, Any]:
    """One measured run of one scenario, with the server's CPU, both cores' load and other processes' CPU."""
    server_core, gen_core = cores
    ours = {os.getpid(), *process_tree(running.pid)}
    cpu0 = tree_cpu_seconds(running.pid)
    ticks0 = core_ticks()
    foreign0 = process_cpu(ours)
    wall0 = time.monotonic()
    args = [*scenario.args, "--duration", str(options.duration), "--warmup", str(options.warmup)]
    figures = run_loadgen(
        exe, running.port, running.server.mode, args, gen_core, options.duration + options.warmup + 60
    )
    wall = time.monotonic() - wall0
    cpu = tree_cpu_seconds(running.pid) - cpu0
    ticks1 = core_ticks()
    # The load generator has exited by now, so its pid is gone from /proc and not counted as foreign.
    figures["foreign_cpu"] = foreign_cpu(foreign0, process_cpu(ours)) / wall  # cores used by others
    figures["server_busy"] = cpu / wall  # the server processes' share of a core (workers: of all cores)
    figures["server_core_busy"] = core_busy(ticks0, ticks1, server_core)  # incl. kernel softirq work
    figures["loadgen_core_busy"] = core_busy(ticks0, ticks1, gen_core)
    count = figures["handshakes_total"] if scenario.key == "handshake" else figures["msgs_total"]
    figures["server_cpu_s"] = cpu
    figures["server_cpu_us_per_op"] = cpu / count * 1e6 if count else None
    return figures


def run_fanout(
    exe: Path, running: RunningServer, fan: FanOut, options: argparse.Namespace, cores: tuple[int | None, int | None]
) -> dict[str, Any]:
    """One broadcast run: deliveries/s, publish-to-receive latency, server CPU per delivery."""
    subscribers = max(10, fan.subscribers // 5) if options.quick else fan.subscribers
    cmd = [
        str(exe), "--pub-port", str(running.port), "--sub-ports", str(running.port), "--path", FANOUT_PATH,
        "--subs", str(subscribers), "--size", str(fan.size), "--window", "4",
        "--duration", str(options.duration), "--warmup", str(options.warmup),
    ]  # fmt: skip
    ours = {os.getpid(), *process_tree(running.pid)}
    cpu0, foreign0, wall0 = tree_cpu_seconds(running.pid), process_cpu(ours), time.monotonic()
    ticks0 = core_ticks()
    timeout = options.duration + options.warmup + 120
    done = subprocess.run(pinned(cmd, cores[1]), capture_output=True, text=True, timeout=timeout, check=False)
    wall = time.monotonic() - wall0
    ticks1 = core_ticks()
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise RuntimeError(f"fanout printed no result (status {done.returncode}): {done.stderr.strip()[:300]}")
    figures = dict(json.loads(lines[-1]))
    cpu = tree_cpu_seconds(running.pid) - cpu0
    figures["foreign_cpu"] = foreign_cpu(foreign0, process_cpu(ours)) / wall
    figures["server_cpu_us_per_op"] = cpu / figures["deliveries"] * 1e6 if figures["deliveries"] else None
    figures["server_core_busy"] = core_busy(ticks0, ticks1, cores[0])  # is the generator the limit? (headroom)
    figures["loadgen_core_busy"] = core_busy(ticks0, ticks1, cores[1])
    return figures


def run_server_round(
    server: Server, options: argparse.Namespace, exe: Path, round_no: int, cores: tuple[int | None, int | None]
) -> dict[str, Any]:
    if not server.pinned and cores != (None, None):
        cores = (options.all_cores, options.all_cores)  # type: ignore[assignment]  # a taskset list: "0,1"
    server_core, gen_core = cores
    result: dict[str, Any] = {"server": server.name, "round": round_no, "scenarios": {}, "errors": []}
    try:
        running = RunningServer(server, options, round_no, server_core)
        if server.workers > 1:
            wait_for_log(running, f"all {server.workers} workers ready")
    except (OSError, RuntimeError) as error:
        result["errors"].append(f"start: {error}")
        return result
    result["log"] = str(running.log_path.relative_to(BENCH))
    if server.source is not None:
        result["wsdaemon_commit"] = server.name.partition("@")[2]
    elif server.name == "wsdaemon" or server.workers:
        result["wsdaemon_commit"] = wsdaemon_source()  # the tree may change between rounds
    try:
        # Warm-up: touch every code path once so lazy imports and caches are done before memory is measured.
        warm = ["--duration", "0.3", "--warmup", "0"]
        run_loadgen(exe, running.port, server.mode, ["--scenario", "echo", "--conns", "20", *warm], gen_core, 60)
        run_loadgen(
            exe,
            running.port,
            server.mode,
            ["--scenario", "echo", "--conns", "2", "--size", "1048576", "--binary", *warm],
            gen_core,
            60,
        )
        run_loadgen(exe, running.port, server.mode, ["--scenario", "handshake", "--conns", "10", *warm], gen_core, 60)
        # (5) idle memory first, on a fresh process (not for the C echo: it only checks the generator).
        if server.name not in CHECK_ONLY and "idle" in server.scenarios and "idle" in options.scenarios:
            try:
                result["scenarios"]["idle"] = measure_idle(exe, running, options.idle_conns, gen_core, options.settle)
            except (OSError, RuntimeError, ValueError) as error:  # LoadgenError is a RuntimeError
                result["errors"].append(f"idle: {error}")
        for scenario in SCENARIOS:
            if scenario.key not in server.scenarios or scenario.key not in options.scenarios:
                continue
            if running.proc.poll() is not None:
                result["errors"].append(f"server exited with status {running.proc.returncode}")
                break
            # A run disturbed by other work on the machine is retried (bounded), after waiting for quiet.
            for attempt in range(options.retries + 1):
                try:
                    figures = run_scenario(exe, running, scenario, options, cores)
                except LoadgenError as error:
                    result["errors"].append(f"{scenario.key}: {error}")
                    break
                figures["attempt"] = attempt + 1
                previous = result["scenarios"].get(scenario.key)
                if previous is None or figures["foreign_cpu"] < previous["foreign_cpu"]:
                    result["scenarios"][scenario.key] = figures
                if not disturbed(figures) or time.monotonic() > options.deadline:
                    break
                wait_quiet(options.wait_quiet)
            time.sleep(0.2)
        for fan in FANOUTS:
            if fan.key not in server.scenarios or fan.key not in options.scenarios or server.mode != "ws" or TLS_FILES:
                continue
            try:
                result["scenarios"][fan.key] = run_fanout(exe.parent / "fanout", running, fan, options, cores)
            except (OSError, RuntimeError, ValueError) as error:
                result["errors"].append(f"{fan.key}: {error}")
    finally:
        running.stop()
    result["server_log_problems"] = log_problems(running.log_path)
    return result


# Tracebacks, and warn/error/critical events in twist's text ("#warn]") and JSON log formats.
LOG_MARKERS = (
    "traceback",
    "unhandled",
    "error:",
    '"name": "error"',
    '"name": "critical"',
    "#error]",
    "#critical]",
    "#warn]",
)


def log_problems(path: Path) -> list[str]:
    """Lines of a server log that look like errors (tracebacks, critical/error levels)."""
    found = []
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return []
    twist_log = path.with_suffix(".twist.log")
    extra = [twist_log] if twist_log.exists() else []
    for chunk in [text, *(p.read_text(errors="replace") for p in extra)]:
        for line in chunk.splitlines():
            low = line.lower()
            if any(marker in low for marker in LOG_MARKERS):
                found.append(line[:300])
    return found[:20]


# ---------------------------------------------------------------------------------------- report


@dataclass(frozen=True)
class Metric:
    scenario: str
    key: str
    label: str
    higher_better: bool
    scale: float = 1.0
    digits: int = 0


METRICS = [
    Metric("echo64", "msgs_per_s", "msgs/s", True),
    Metric("echo64", "p50_us", "p50 latency µs", False),
    Metric("echo64", "p99_us", "p99 latency µs", False),
    Metric("echo64", "server_cpu_us_per_op", "server CPU µs/msg", False, digits=1),
    Metric("pipe64", "msgs_per_s", "msgs/s", True),
    Metric("pipe64", "p50_us", "p50 latency µs", False),
    Metric("pipe64", "p99_us", "p99 latency µs", False),
    Metric("pipe64", "server_cpu_us_per_op", "server CPU µs/msg", False, digits=1),
    Metric("big", "mb_per_s", "MB/s (echoed)", True),
    Metric("big", "p50_us", "p50 latency ms", False, 1e-3, 1),
    Metric("big", "p99_us", "p99 latency ms", False, 1e-3, 1),
    Metric("handshake", "handshakes_per_s", "handshakes/s", True),
    Metric("handshake", "p50_us", "p50 open→closed ms", False, 1e-3, 1),
    Metric("handshake", "server_cpu_us_per_op", "server CPU µs/handshake", False),
    Metric("idle", "kib_per_conn", "KiB per idle conn", False, digits=1),
    *(
        metric
        for fan in FANOUTS
        for metric in (
            Metric(fan.key, "deliveries_per_s", "deliveries/s", True),
            Metric(fan.key, "p50_us", "p50 publish→receive ms", False, 1e-3, 1),
            Metric(fan.key, "p99_us", "p99 publish→receive ms", False, 1e-3, 1),
            Metric(fan.key, "server_cpu_us_per_op", "server CPU µs/delivery", False, digits=2),
        )
    ),
]
TITLES = {s.key: s.title for s in SCENARIOS} | {"idle": IDLE_TITLE} | {f.key: f.title for f in FANOUTS}


def summarize(rounds: list[dict[str, Any]], names: list[str], stat: str) -> dict[str, dict[str, dict[str, Any]]]:
    """server -> scenario -> key -> best (or median) value over the rounds.

    Runs that other work on the machine disturbed are used only when a server has no undisturbed run of
    that scenario; the scenario is then flagged ``disturbed`` (a * in the table).
    """
    summary: dict[str, dict[str, dict[str, Any]]] = {}
    for name in names:
        per: dict[str, dict[str, Any]] = {}
        for metric in METRICS:
            runs = [
                r["scenarios"][metric.scenario]
                for r in rounds
                if r["server"] == name
                and metric.scenario in r["scenarios"]
                and r["scenarios"][metric.scenario].get(metric.key) is not None
                and _valid(r["scenarios"][metric.scenario], metric)
            ]
            quiet = [run for run in runs if not disturbed(run)]
            entry = per.setdefault(metric.scenario, {"disturbed": bool(runs) and not quiet})
            values = [float(run[metric.key]) for run in (quiet or runs)]
            value: float | None = None
            if values:
                if stat == "median":
                    value = statistics.median(values)
                else:
                    value = max(values) if metric.higher_better else min(values)
            entry[metric.key] = value
        summary[name] = per
    return summary


def _valid(figures: dict[str, Any], metric: Metric) -> bool:
    """A latency or CPU figure with nothing measured is no figure."""
    if metric.scenario == "idle":
        return bool(figures.get("open"))
    if metric.scenario == "handshake":
        return bool(figures.get("handshakes"))
    if metric.scenario.startswith("fanout"):
        return bool(figures.get("deliveries"))
    return bool(figures.get("msgs"))


def fmt(value: float | None, metric: Metric) -> str:
    if value is None:
        return "—"
    value *= metric.scale
    if metric.digits == 0 and abs(value) >= 1:
        return f"{value:,.0f}"
    return f"{value:,.{max(metric.digits, 1)}f}"


def markdown(summary: dict[str, Any], names: list[str], scenarios: tuple[str, ...] = ALL_SCENARIOS) -> str:
    """Rows = scenario metrics (of the ``scenarios`` run), columns = servers, then wsdaemon / X for each alternative."""
    names = [n for n in names if n not in CHECK_ONLY and not BY_NAME[n].workers]
    base = "wsdaemon" if "wsdaemon" in names else None
    others = [n for n in names if n != base] if base else []
    head = ["scenario", "metric", "better", *names, *(f"{base} / {o}" for o in others)]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    last = None
    for metric in METRICS:
        if metric.scenario not in scenarios:
            continue
        title = TITLES[metric.scenario] if metric.scenario != last else ""
        last = metric.scenario
        cells = [title, metric.label, "higher" if metric.higher_better else "lower"]
        for name in names:
            entry = summary[name].get(metric.scenario, {})
            value = entry.get(metric.key)
            mark = "†" if name == "tcp" and metric.scenario == "handshake" and value is not None else ""
            mark += "*" if entry.get("disturbed") and value is not None else ""
            cells.append(fmt(value, metric) + mark)
        if base:
            mine = summary[base].get(metric.scenario, {}).get(metric.key)
            for other in others:
                theirs = summary[other].get(metric.scenario, {}).get(metric.key)
                cells.append(f"{mine / theirs:.2f}{TIMES}" if mine is not None and theirs else "—")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


HEADROOM = (
    ("echo64", "msgs_per_s", "msgs/s"),
    ("pipe64", "msgs_per_s", "msgs/s"),
    ("big", "mb_per_s", "MB/s"),
    ("handshake", "handshakes_per_s", "handshakes/s"),
    ("fanout64", "deliveries_per_s", "deliveries/s"),  # no C fan-out server: the core figures tell
    ("fanout4k", "deliveries_per_s", "deliveries/s"),
)


def headroom(rounds: list[dict[str, Any]]) -> list[str]:
    """Evidence that the load generator is not the bottleneck, as a Markdown table."""

    def best(server_filter: Any, scenario: str, key: str) -> tuple[float, dict[str, Any], str] | None:
        runs = [
            (r["scenarios"][scenario][key], r["scenarios"][scenario], r["server"])
            for r in rounds
            if server_filter(r["server"]) and scenario in r["scenarios"]
        ]
        quiet = [run for run in runs if not disturbed(run[1])]
        return max(quiet or runs, key=lambda run: run[0]) if runs else None

    def star(run: tuple[float, dict[str, Any], str] | None) -> str:
        return "*" if run and disturbed(run[1]) else ""

    def pct(value: float | None) -> str:
        return f"{value * 100:.0f}%" if value is not None else "—"

    lines = [
        (
            "| scenario | C echo (load generator's reach) | load generator core busy | plain Twisted TCP echo "
            "| fastest WebSocket server | its server core / load generator core busy | reach / fastest WebSocket |"
        ),
        "|---|---|---|---|---|---|---|",
    ]
    for scenario, key, unit in HEADROOM:
        reach = best(lambda n: n == "c-tcp", scenario, key)
        tcp = best(lambda n: n == "tcp", scenario, key)
        ws = best(lambda n: BY_NAME[n].mode == "ws" and BY_NAME[n].pinned, scenario, key)
        if not (reach or tcp or ws):
            continue
        cells = [TITLES[scenario]]
        cells.append(f"{reach[0]:,.0f} {unit}{star(reach)}" if reach else "—")
        cells.append(pct(reach[1].get("loadgen_core_busy")) if reach else "—")
        cells.append(f"{tcp[0]:,.0f} {unit}{star(tcp)}" if tcp else "—")
        cells.append(f"{ws[0]:,.0f} {unit}{star(ws)} ({ws[2]})" if ws else "—")
        cells.append(f"{pct(ws[1].get('server_core_busy'))} / {pct(ws[1].get('loadgen_core_busy'))}" if ws else "—")
        cells.append(f"{reach[0] / ws[0]:.1f}{TIMES}" if reach and ws and ws[0] else "—")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


WORKER_METRICS = [metric for metric in METRICS if metric.scenario in WORKER_SCENARIOS]


def placement(names: list[str], cores: tuple[Any, Any], all_cores: str) -> str:
    """Where the servers and the load generator ran, for the footer."""
    pinned = f"server on core {cores[0]}, load generator on core {cores[1]}"
    unpinned = f"workers comparison: servers and load generator on cores {all_cores}"
    kinds = {BY_NAME[name].pinned for name in names}
    return "; ".join(([pinned] if True in kinds else []) + ([unpinned] if False in kinds else []))


def workers_table(summary: dict[str, Any], names: list[str], all_cores: str) -> str:
    """wsdaemon with workers = 1 and = 2 side by side: throughput and CPU per operation (all processes)."""
    lines = [
        f"Workers: wsdaemon with [process] workers = N; server and load generator both on cores {all_cores} "
        "(not pinned apart), so the generator competes with the workers for the same cores. "
        "Server CPU is the main process's and every worker's, added up.",
        "",
    ]
    head = ["scenario", "metric", "better", *(BY_NAME[n].title for n in names)]
    ratio = len(names) == 2
    if ratio:
        head.append(f"{BY_NAME[names[1]].title} / {BY_NAME[names[0]].title}")
    lines += ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    last = None
    for metric in WORKER_METRICS:
        title = TITLES[metric.scenario] if metric.scenario != last else ""
        last = metric.scenario
        values = [summary[name].get(metric.scenario, {}).get(metric.key) for name in names]
        cells = [title, metric.label, "higher" if metric.higher_better else "lower"]
        marks = ["*" if summary[name].get(metric.scenario, {}).get("disturbed") else "" for name in names]
        cells += [
            fmt(value, metric) + (mark if value is not None else "") for value, mark in zip(values, marks, strict=True)
        ]
        if ratio:
            cells.append(f"{values[1] / values[0]:.2f}{TIMES}" if values[0] and values[1] is not None else "—")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def wsdaemon_source() -> str:
    """The commit wsdaemon was measured at, and whether its files differed from it."""
    repo = BENCH.parent
    try:
        head = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(repo), "status", "--porcelain", "--", "wsdaemon", "twisted"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{head}{' + uncommitted changes' if dirty else ''}"


def versions() -> dict[str, str]:
    out = {"python": platform.python_version(), "wsdaemon commit": wsdaemon_source()}
    for dist in ("wsdaemon", "Twisted", "autobahn", "websockets", "uvloop", "wsproto"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return out


# ------------------------------------------------------------------------------------------ main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 round, 1 s scenarios, 500 idle connections")
    parser.add_argument("--rounds", type=int, help="rounds, interleaved across servers (default 2; --quick 1)")
    parser.add_argument("--duration", type=float, help="measured seconds per scenario (default 5; --quick 1)")
    parser.add_argument("--warmup", type=float, help="unmeasured seconds before each scenario (default 1; --quick 0.3)")
    parser.add_argument(
        "--idle-conns", type=int, help="connections held for the memory figure (default 10000; --quick 500)"
    )
    parser.add_argument("--only", help="comma-separated servers: " + ",".join(BY_NAME))
    parser.add_argument("--scenarios", help="comma-separated scenarios (default all): " + ",".join(ALL_SCENARIOS))
    parser.add_argument("--tls", action="store_true", help="every server and the load generator over TLS (wss://)")
    parser.add_argument(
        "--baseline",
        metavar="REF",
        action="append",
        default=[],
        help="also run wsdaemon at git commit REF (as server wsdaemon@REF): the before/after of a change; repeatable",
    )
    parser.add_argument(
        "--stat", choices=("best", "median"), default="best", help="how rounds are combined (default best)"
    )
    parser.add_argument(
        "--wsdaemon-log-level", default="info", help="twist --log-level for wsdaemon (default info, as deployed)"
    )
    parser.add_argument(
        "--wait-quiet",
        type=float,
        help="wait up to this long for other work to leave the cores before each server (default 15 s; --quick 0)",
    )
    parser.add_argument(
        "--retries", type=int, help="reruns of a scenario disturbed by other processes (default 2; --quick 0)"
    )
    parser.add_argument(
        "--budget",
        type=float,
        help="minutes after which disturbed scenarios are no longer rerun (default 12; --quick 1)",
    )
    parser.add_argument("--no-pin", action="store_true", help="do not pin server and load generator to cores 0 and 1")
    parser.add_argument(
        "--output", type=Path, default=RESULTS / "latest.json", help="JSON results (default bench/results/latest.json)"
    )
    options = parser.parse_args(argv)
    quick = options.quick
    options.rounds = options.rounds or (1 if quick else 2)
    options.duration = options.duration if options.duration is not None else (1.0 if quick else 5.0)
    options.warmup = options.warmup if options.warmup is not None else (0.3 if quick else 1.0)
    options.idle_conns = options.idle_conns or (500 if quick else 10000)
    options.settle = 0.3 if quick else 1.0
    options.wait_quiet = options.wait_quiet if options.wait_quiet is not None else (0.0 if quick else 10.0)
    options.retries = options.retries if options.retries is not None else (0 if quick else 2)
    options.budget = options.budget if options.budget is not None else (1.0 if quick else 8.0)
    options.deadline = time.monotonic() + options.budget * 60
    options.scenarios = tuple(s.strip() for s in options.scenarios.split(",")) if options.scenarios else ALL_SCENARIOS
    unknown = [s for s in options.scenarios if s not in ALL_SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario(s) {', '.join(unknown)}; known: {', '.join(ALL_SCENARIOS)}")
    return options


def main(argv: list[str] | None = None) -> int:
    global TLS_FILES
    options = parse_args(argv)
    names = (
        [n.strip() for n in options.only.split(",")]
        if options.only
        else [s.name for s in SERVERS if s.name not in EXPERIMENTS]
    )
    if "wsdaemon-stdssl" in names and not options.tls:
        sys.exit("bench: wsdaemon-stdssl swaps the daemon's TLS; it needs --tls")
    for ref in options.baseline:
        BUILD.mkdir(exist_ok=True)
        before = baseline_server(ref)
        BY_NAME[before.name] = before
        names.append(before.name)
    if options.tls:
        BUILD.mkdir(exist_ok=True)
        TLS_FILES = make_tls_files()
        LOADGEN_FLAGS.append("--tls")
        if "c-tcp" in names:  # the C echo speaks no TLS
            names.remove("c-tcp")
    unknown = [n for n in names if n not in BY_NAME]
    if unknown:
        sys.exit(f"bench: unknown server(s) {', '.join(unknown)}; known: {', '.join(BY_NAME)}")

    missing = {name: missing_modules(BY_NAME[name]) for name in names}
    missing = {name: mods for name, mods in missing.items() if mods}
    if missing:
        packages = sorted({pkg for name in missing for pkg in BY_NAME[name].packages})
        for name, mods in missing.items():
            print(f"bench: {name} needs {', '.join(mods)}, which this Python cannot import", file=sys.stderr)
        print(f"bench: install with:  {sys.executable} -m pip install {' '.join(packages)}", file=sys.stderr)
        print("bench: (or: pip install -r bench/requirements.txt), or leave them out with --only", file=sys.stderr)
        return 2

    # Room for 10,000 idle connections on each side; children inherit the limit.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = options.idle_conns + 1000
    if soft < want:
        resource.setrlimit(
            resource.RLIMIT_NOFILE, (min(hard, max(want, soft)) if hard != resource.RLIM_INFINITY else want, hard)
        )
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft < want:
        print(f"bench: RLIMIT_NOFILE is {soft}; using {soft - 1000} idle connections", file=sys.stderr)
        options.idle_conns = max(100, soft - 1000)

    cpus = sorted(os.sched_getaffinity(0))
    if options.no_pin or len(cpus) < 2 or not shutil.which("taskset"):
        if not options.no_pin:
            why = "fewer than 2 cores available" if len(cpus) < 2 else "no taskset (Debian: util-linux)"
            print(f"bench: {why}: not pinning (figures will be noisy)", file=sys.stderr)
        cores: tuple[int | None, int | None] = (None, None)
    else:
        cores = (cpus[SERVER_CORE], cpus[LOADGEN_CORE])
        os.sched_setaffinity(0, {cores[1]})  # this runner stays off the server's core
    options.all_cores = ",".join(str(cpu) for cpu in cpus)  # the workers comparison runs on all of them

    BUILD.mkdir(exist_ok=True)
    LOGS.mkdir(exist_ok=True)
    for old in LOGS.glob("*.log"):
        old.unlink()
    (BUILD / "wsdaemon.toml").write_text(WSDAEMON_CONFIG)
    for workers in {BY_NAME[name].workers for name in names} - {0}:
        (BUILD / f"wsdaemon-w{workers}.toml").write_text(wsdaemon_config(workers))
    exe = build_c_programs()

    started = time.monotonic()
    rounds: list[dict[str, Any]] = []
    for round_no in range(1, options.rounds + 1):
        # Interleaved: every server once per round; the order rotates so no server is always first.
        shift = (round_no - 1) % len(names)
        order = names[shift:] + names[:shift]
        for name in order:
            quiet = wait_quiet(options.wait_quiet)
            if quiet >= 0.10:
                print(
                    f"bench:   the machine is busy with other work ({quiet * 100:.0f}% of both cores); figures may be low",
                    file=sys.stderr,
                )
            t0 = time.monotonic()
            print(f"bench: round {round_no}/{options.rounds}: {name} ...", file=sys.stderr, flush=True)
            result = run_server_round(BY_NAME[name], options, exe, round_no, cores)
            result["busy_before"] = quiet
            rounds.append(result)
            for error in result["errors"]:
                print(f"bench:   {name}: {error}", file=sys.stderr)
            print(f"bench:   {name} done in {time.monotonic() - t0:.1f} s", file=sys.stderr, flush=True)

    summary = summarize(rounds, names, options.stat)
    table = markdown(summary, names, options.scenarios)
    notes = notes_for(rounds, names)
    elapsed = time.monotonic() - started
    cmd = "python bench/run.py " + " ".join(sys.argv[1:] if argv is None else argv)
    print(
        f"## wsdaemon benchmark{' over TLS (wss://)' if options.tls else ''} ({options.stat} of {options.rounds} "
        f"round(s), {options.duration:g} s per scenario, {options.idle_conns} idle connections)\n"
    )
    if any(not BY_NAME[name].workers for name in names):
        print(table)
        print()
        print(
            f"Ratios are wsdaemon's figure divided by the other server's: above 1.00{TIMES} is better where "
            f'"better" says higher, below 1.00{TIMES} where it says lower.'
        )
    if any(BY_NAME[name].workers for name in names):
        print()
        print(workers_table(summary, [name for name in names if BY_NAME[name].workers], options.all_cores))
        print()
    if "tcp" in names:
        print("† plain TCP echo: connect + 1-byte echo + close (no WebSocket handshake), as a ceiling.")
    if any(entry.get("disturbed") for per in summary.values() for entry in per.values()):
        print("* only runs disturbed by other processes on the machine were available (see the notes): rerun.")
    room = headroom(rounds)
    if len(room) > 2:  # a row beyond the head
        print()
        print(
            "Load generator headroom: the same generator against a C echo shows how far it reaches; a server is the "
            "bottleneck when its core is ~100% busy while the generator's core is not. Core figures are from "
            "/proc/stat and include the kernel's softirq time, where loopback TCP is processed."
        )
        print()
        for line in room:
            print(line)
    if notes:
        print()
        print("Notes:")
        for line in notes:
            print(f"- {line}")
    print()
    print(
        f"_{cmd.strip()} — {elapsed:.0f} s; {placement(names, cores, options.all_cores)}; "
        f"{', '.join(f'{k} {v}' for k, v in versions().items())}_"
    )

    options.output.parent.mkdir(parents=True, exist_ok=True)
    options.output.write_text(
        json.dumps(
            {
                "command": cmd.strip(),
                "elapsed_seconds": elapsed,
                "options": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(options).items()},
                "cores": {"server": cores[0], "loadgen": cores[1]},
                "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
                "versions": versions(),
                "summary": summary,
                "rounds": rounds,
                "markdown": table,
            },
            indent=2,
        )
    )
    # Exit 1 when something could not be measured or an echo went wrong, so a smoke test can rely on the status.
    failed = [r["server"] for r in rounds if r["errors"] or any(f.get("errors") for f in r["scenarios"].values())]
    missing = [
        r["server"]
        for r in rounds
        if ({s.key for s in SCENARIOS} & set(BY_NAME[r["server"]].scenarios) & set(options.scenarios))
        - set(r["scenarios"])
        or (
            r["server"] not in CHECK_ONLY
            and "idle" in BY_NAME[r["server"]].scenarios
            and "idle" in options.scenarios
            and "idle" not in r["scenarios"]
        )
    ]
    if failed or missing:
        print(
            f"bench: errors or missing figures for: {', '.join(sorted(set(failed + missing)))} (see the notes)",
            file=sys.stderr,
        )
        return 1
    return 0


def notes_for(rounds: list[dict[str, Any]], names: list[str]) -> list[str]:
    notes = []
    for result in rounds:
        where = f"{result['server']} round {result['round']}"
        for error in result["errors"]:
            notes.append(f"{where}: {error}")
        shaken = [
            f"{key} ({figures['foreign_cpu']:.2f} cores, attempt {figures.get('attempt', 1)})"
            for key, figures in result["scenarios"].items()
            if disturbed(figures)
        ]
        if shaken:
            notes.append(f"{where}: other processes on the machine were busy during " + ", ".join(shaken))
        for key, figures in result["scenarios"].items():
            if figures.get("errors"):
                notes.append(
                    f"{where} {key}: {figures['errors']} load-generator error(s), first: {figures.get('first_error')}"
                )
            if key == "idle" and figures.get("open", 0) < figures.get("conns", 0):
                notes.append(f"{where} idle: only {figures['open']} of {figures['conns']} connections opened")
        for line in result.get("server_log_problems", [])[:3]:
            notes.append(f"{where} server log: {line}")
    return notes


if __name__ == "__main__":
    sys.exit(main())
