"""A throwaway ``redis-server`` for the broker tests: a free port on 127.0.0.1, no persistence, stopped by PID."""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.integration.support import LOOPBACK, free_port

STARTUP_SECONDS = 10.0


class RedisServer:
    """One redis-server process; ``kill`` and ``start`` again keep the same port."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The ``[broker] url`` of this server."""
        return f"redis://{LOOPBACK}:{self.port}/0"

    def start(self) -> None:
        """Start it and wait until it answers PING."""
        log = (self.workdir / f"redis-{self.port}.log").open("ab")
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", LOOPBACK, "--save", "", "--appendonly", "no"],
            cwd=self.workdir,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            try:
                if self.cli("PING") == "PONG":
                    return
            except (OSError, subprocess.CalledProcessError):
                pass
            time.sleep(0.05)
        pytest.fail(f"redis-server did not answer on port {self.port}", pytrace=False)

    def kill(self) -> None:
        """SIGKILL it (a crash: no goodbye to its clients) and wait for it to be gone."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(STARTUP_SECONDS)

    def cli(self, *args: str, stdin: bytes | None = None) -> str:
        """Run one ``redis-cli`` command against it; its output without the trailing newline."""
        command = ["redis-cli", "-h", LOOPBACK, "-p", str(self.port), *args]
        done = subprocess.run(command, input=stdin, capture_output=True, check=True, timeout=STARTUP_SECONDS)
        return done.stdout.decode(errors="replace").rstrip("\n")

    def subscribers(self, channel: str) -> int:
        """How many connections subscribe the Redis channel ``channel`` (PUBSUB NUMSUB)."""
        answer = self.cli("PUBSUB", "NUMSUB", channel).split("\n")
        return int(answer[1]) if len(answer) > 1 else 0

    def accepts(self) -> bool:
        """Whether something listens on its port."""
        with socket.socket() as probe:
            return probe.connect_ex((LOOPBACK, self.port)) == 0
