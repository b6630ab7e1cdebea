"""Client conformance: the Autobahn TestSuite's client cases, served by ``kosoku -m fuzzingserver``.

kosoku plays the server; wsdaemon's own client (``wsdaemon.adapter.client.connect``, driven by
``tests/integration/autobahn_client.py`` in a subprocess) connects to each case and echoes what
it gets. kosoku writes its verdicts (``index.json``, as in the server test) once the client calls
``/updateReports``, then exits.

The selection keeps the run short: every framing, UTF-8, close and limits case (1.* to 10.*),
and every permessage-deflate group: each 12.* and 13.* group is one exchange at 18 message
sizes, and the whole of them takes minutes, so 12.1.* and 13.1.* run whole and every other
group (other data sets, window sizes and offers) at its smallest and largest size. The 13.2,
13.5 and 13.6 groups have the server ask for ``client_no_context_takeover``, which kosoku does
only for an offer that carries that hint; our client's offer does
(``wsdaemon.core.deflate.CLIENT_OFFER``), so none of them is UNIMPLEMENTED.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.integration.support import LOOPBACK, free_port
from tests.integration.test_autobahn import case_sort_key, describe_failure, kosoku_command, slowest, summarize

REPO_ROOT = Path(__file__).resolve().parents[2]
CASES = (
    *(f"{group}.*" for group in (1, 2, 3, 4, 5, 6, 7, 9, 10)),
    "12.1.*",
    "13.1.*",
    *(f"12.{group}.{first_or_last}" for group in (2, 3, 4, 5) for first_or_last in (1, 18)),
    *(f"13.{group}.{first_or_last}" for group in (2, 3, 4, 5, 6, 7) for first_or_last in (1, 18)),
)
#: The client's verdicts must be exactly right: no NON-STRICT (INFORMATIONAL cases test nothing required).
PASSING = ("OK", "INFORMATIONAL")
#: Every case of the selection: 1.* to 10.* (301), 12.1.* and 13.1.* (36), 10 other groups x 2.
EXPECTED_CASES = 301 + 36 + 20
PARALLELISM = 2
START_TIMEOUT_SECONDS = 15.0
RUN_TIMEOUT_SECONDS = 900


def start_fuzzingserver(port: int, outdir: Path, stderr_path: Path) -> subprocess.Popen[bytes]:
    """kosoku serving the selected cases on 127.0.0.1:port, once it says it listens."""
    command = [*kosoku_command(), "-m", "fuzzingserver", f"{LOOPBACK}:{port}", "-o", str(outdir)]
    for pattern in CASES:
        command += ["-i", pattern]
    with stderr_path.open("wb") as stderr:
        server = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=stderr, stderr=stderr)
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while b"listening" not in stderr_path.read_bytes():
        if server.poll() is not None or time.monotonic() > deadline:
            server.kill()
            pytest.fail(f"kosoku fuzzingserver did not start\n{stderr_path.read_text()}", pytrace=False)
        time.sleep(0.05)
    return server


def drive_cases(port: int) -> subprocess.CompletedProcess[str]:
    """Our client through every case, PARALLELISM at a time."""
    return subprocess.run(
        [sys.executable, "-m", "tests.integration.autobahn_client", f"ws://{LOOPBACK}:{port}", str(PARALLELISM)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_SECONDS,
        check=False,
    )


def test_autobahn_client_cases_pass(tmp_path):
    """wsdaemon's client gets OK (or INFORMATIONAL) in every Autobahn client case run, never NON-STRICT."""
    port, outdir = free_port(), tmp_path / "kosoku"
    server = start_fuzzingserver(port, outdir, tmp_path / "kosoku.log")
    started = time.monotonic()
    try:
        driven = drive_cases(port)
        server.wait(30)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    elapsed = time.monotonic() - started
    log = (tmp_path / "kosoku.log").read_text(errors="replace")
    index = outdir / "index.json"
    assert index.exists(), f"kosoku wrote no index.json\n{log}\n--- client ---\n{driven.stderr}"
    results: dict = {}
    for agent_cases in json.loads(index.read_text()).values():
        results.update(agent_cases)
    summary = (
        f"kosoku fuzzingserver: {len(results)} client cases in {elapsed:.1f} s (client -p {PARALLELISM})\n"
        f"{summarize(results)}\n  slowest: {slowest(results)}"
    )
    print(summary)
    failing = sorted(
        (c for c, e in results.items() if e["behavior"] not in PASSING or e["behaviorClose"] not in PASSING),
        key=case_sort_key,
    )
    details = "\n".join(describe_failure(c, results[c], outdir) for c in failing)
    assert not failing, f"{len(failing)} cases failed\n{summary}\n{details}\nreports: {outdir}"
    assert len(results) >= EXPECTED_CASES, f"too few cases ran\n{summary}\n{driven.stderr}"
    assert driven.returncode == 0, driven.stderr
