"""A short smoke run of the benchmark (bench/run.py): it builds, runs and reports, nothing more.

The figures depend on the machine and on whatever else runs on it, so no figure
is asserted (the README's Performance section has a full run).
"""

from __future__ import annotations

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
