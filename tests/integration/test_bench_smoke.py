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


def run_bench(script: str, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    """Run ``bench/<script>`` with this Python from the repository root; its output, whatever its exit."""
    return subprocess.run(
        [sys.executable, f"bench/{script}", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_quick_benchmark_of_wsdaemon_and_the_tcp_ceiling_runs(tmp_path):
    """`bench/run.py --quick --only wsdaemon,tcp` compiles the load generator, runs and prints the table."""
    output = tmp_path / "bench.json"
    result = run_bench("run.py", "--quick", "--only", "wsdaemon,tcp", "--output", str(output), timeout=240)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "| (1) echo 64 B text" in result.stdout and "wsdaemon / tcp" in result.stdout
    assert output.exists()


def test_quick_benchmark_over_tls_runs_against_wsdaemons_own_tls_listener(tmp_path):
    """`--tls`: the load generator speaks TLS to wsdaemon's own TLS listener, to Twisted's TLS echo,
    and to the experiment with Python's ssl module in place of pyOpenSSL, which must echo every
    message unchanged for its figures to mean anything."""
    output = tmp_path / "bench.json"
    result = run_bench(
        "run.py",
        "--quick",
        "--tls",
        "--only",
        "wsdaemon,tcp,wsdaemon-stdssl",
        "--scenarios",
        "echo64,handshake",
        "--output",
        str(output),
        timeout=240,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "over TLS (wss://)" in result.stdout and "| (4) open + handshake + close" in result.stdout
    assert "(3) echo 1 MiB" not in result.stdout  # only the scenarios asked for
    rounds = json.loads(output.read_text())["rounds"]
    wsdaemon = next(r for r in rounds if r["server"] == "wsdaemon")
    assert wsdaemon["scenarios"]["echo64"]["tls"] is True and wsdaemon["scenarios"]["echo64"]["errors"] == 0
    assert wsdaemon["scenarios"]["handshake"]["handshakes"] > 0
    experiment = next(r for r in rounds if r["server"] == "wsdaemon-stdssl")["scenarios"]
    assert experiment["echo64"]["tls"] is True and experiment["echo64"]["msgs"] > 0
    assert experiment["echo64"]["errors"] == 0 and experiment["handshake"]["errors"] == 0
    assert experiment["handshake"]["handshakes"] > 0


def test_the_python_ssl_experiment_is_only_run_over_tls():
    """Without --tls the experiment would measure nothing it is for: the benchmark says so and stops."""
    result = run_bench("run.py", "--quick", "--only", "wsdaemon-stdssl", timeout=60)
    assert result.returncode != 0 and "needs --tls" in result.stderr


def test_the_tls_binding_measurement_runs_for_both_bindings():
    """`bench/tls_binding.py` echoes through pyOpenSSL and through Python's ssl and prints both rows."""
    result = run_bench("tls_binding.py", "--messages", "200", "--conns", "20", "--rounds", "1", timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    rows = [line for line in result.stdout.splitlines() if line.startswith("| pyopenssl") or line.startswith("| ssl")]
    assert len(rows) == 3, result.stdout  # both bindings and their ratio
