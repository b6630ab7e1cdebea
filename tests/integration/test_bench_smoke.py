"""A short smoke run of the benchmark (bench/run.py): it builds, runs and reports, nothing more.

The figures depend on the machine and on whatever else runs on it, so no figure
is asserted (the README's Performance section has a full run).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_quick_benchmark_of_wsdaemon_and_the_tcp_ceiling_runs(tmp_path):
    """`bench/run.py --quick --only wsdaemon,tcp` compiles the load generator, runs and prints the table."""
    output = tmp_path / "bench.json"
    result = subprocess.run(
        [sys.executable, "bench/run.py", "--quick", "--only", "wsdaemon,tcp", "--output", str(output)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "| (1) echo 64 B text" in result.stdout and "wsdaemon / tcp" in result.stdout
    assert output.exists()


def test_quick_benchmark_over_tls_runs_against_wsdaemons_own_tls_listener(tmp_path):
    """`--tls`: the load generator speaks TLS to wsdaemon's own TLS listener and to Twisted's TLS echo."""
    output = tmp_path / "bench.json"
    result = subprocess.run(
        [
            sys.executable, "bench/run.py", "--quick", "--tls", "--only", "wsdaemon,tcp",
            "--scenarios", "echo64,handshake", "--output", str(output),
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "over TLS (wss://)" in result.stdout and "| (4) open + handshake + close" in result.stdout
    assert "(3) echo 1 MiB" not in result.stdout  # only the scenarios asked for
    rounds = json.loads(output.read_text())["rounds"]
    wsdaemon = next(r for r in rounds if r["server"] == "wsdaemon")
    assert wsdaemon["scenarios"]["echo64"]["tls"] is True and wsdaemon["scenarios"]["echo64"]["errors"] == 0
    assert wsdaemon["scenarios"]["handshake"]["handshakes"] > 0
