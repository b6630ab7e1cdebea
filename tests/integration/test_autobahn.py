"""Conformance: the Autobahn TestSuite cases, driven by kosoku, against /echo.

kosoku writes its reports (``index.json`` and one JSON file per case) only when
the whole run finishes, may crash on exit after writing them, and has no
handshake timeout of its own.  So it runs under a subprocess timeout and the
verdict comes from ``index.json``, never from its exit status.

``index.json`` is ``{agent: {case_id: {"behavior", "behaviorClose",
"remoteCloseCode", "duration" (ms), "reportfile"}}}``; the per-case report
named by ``reportfile`` holds the human-readable ``result``/``resultClose``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

# Autobahn has no 8.* or 11.* cases; 12.* and 13.* are permessage-deflate (RFC 7692).
SUITES = [
    pytest.param(("1.*", "2.*", "3.*", "4.*", "5.*", "6.*", "7.*", "9.*", "10.*"), {}, id="core"),
    pytest.param(("12.*", "13.*"), {}, id="compression"),
    # The framing, masking and UTF-8 cases again on the pure-Python fallback of
    # the C accelerator (wsdaemon.core.speedups), so CI runs both paths for real.
    pytest.param(("1.*", "5.*", "6.*", "9.1.*", "9.2.*"), {"WSDAEMON_NO_SPEEDUPS": "1"}, id="without-accelerator"),
]
PASSING = ("OK", "NON-STRICT", "INFORMATIONAL")
PARALLELISM = 2
KOSOKU_TIMEOUT_SECONDS = 600

# The 9.* cases send messages of up to 16 MiB, some in very many fragments,
# and the echo of a 16 MiB message must fit in the write buffer.
CONFIG = """\
[limits]
max_message_bytes = 16777216
max_frame_bytes = 16777216
max_fragments = 1100000
write_buffer_max_bytes = 67108864
# Every case is a new connection from 127.0.0.1, hundreds in a row.
connection_rate_per_ip = 1000000.0
connection_burst_per_ip = 1000000

[[endpoints]]
path = "/echo"
handler = "echo"

# kosoku's compression cases hash each echo as bytes, but hand the test a str
# when a text message comes back uncompressed (RSV1 clear), which RFC 7692 §6
# allows and our default does below 64 bytes; compressing every message keeps
# its harness working. Every other deflate setting is the default.
[endpoints.deflate]
min_size_bytes = 0
"""


def kosoku_command() -> list[str]:
    """The kosoku CLI installed beside this interpreter (or on PATH)."""
    beside = Path(sys.executable).with_name("kosoku")
    found = str(beside) if beside.exists() else shutil.which("kosoku")
    if found is None:
        pytest.fail("kosoku is not installed (pip install kosoku; it is in the [test] extra)")
    return [found]


def run_kosoku(url: str, cases: tuple[str, ...], outdir: Path) -> tuple[dict, str, float]:
    """Run kosoku to completion; returns (index.json's cases, its output, seconds)."""
    command = [*kosoku_command(), url, "-o", str(outdir), "-p", str(PARALLELISM)]
    for pattern in cases:
        command += ["-i", pattern]
    started = time.monotonic()
    try:
        # check=False: kosoku can abort at exit after a good run; index.json is the verdict.
        finished = subprocess.run(command, check=False, capture_output=True, text=True, timeout=KOSOKU_TIMEOUT_SECONDS)
        output = finished.stdout + finished.stderr
    except subprocess.TimeoutExpired as expired:
        output = (
            f"kosoku did not finish within {KOSOKU_TIMEOUT_SECONDS} s\n{expired.stdout or ''}{expired.stderr or ''}"
        )
    elapsed = time.monotonic() - started
    index_path = outdir / "index.json"
    if not index_path.exists():
        pytest.fail(f"kosoku wrote no index.json\n{output}", pytrace=False)
    results = {}
    for agent_cases in json.loads(index_path.read_text()).values():
        results.update(agent_cases)
    return results, output, elapsed


def case_sort_key(case_id: str) -> list[int]:
    """1.2.10 sorts after 1.2.9."""
    return [int(part) for part in case_id.split(".")]


def summarize(results: dict) -> str:
    """One line per top-level case number with its verdict counts."""
    counts: dict[str, Counter[str]] = {}
    for case_id, entry in results.items():
        counts.setdefault(case_id.split(".")[0], Counter())[entry["behavior"]] += 1
    lines = []
    for group in sorted(counts, key=int):
        verdicts = ", ".join(f"{verdict} {n}" for verdict, n in sorted(counts[group].items()))
        lines.append(f"  {group + '.*':>5} {sum(counts[group].values()):4d} cases: {verdicts}")
    return "\n".join(lines)


def describe_failure(case_id: str, entry: dict, outdir: Path) -> str:
    """A failing case's id, verdicts and kosoku's explanation of it."""
    try:
        report = json.loads((outdir / entry["reportfile"]).read_text())
    except (OSError, ValueError) as error:
        report = {"description": f"(no case report: {error})", "result": "?", "resultClose": "?"}
    return (
        f"  {case_id}: behavior={entry['behavior']} close={entry['behaviorClose']} "
        f"remoteCloseCode={entry['remoteCloseCode']}\n"
        f"      {report['description']}\n"
        f"      result: {report['result']} | close: {report['resultClose']}"
    )


def slowest(results: dict, n: int = 5) -> str:
    """The n slowest cases, to see where the time goes."""
    ranked = sorted(results.items(), key=lambda item: item[1]["duration"], reverse=True)[:n]
    return ", ".join(f"{case_id} {entry['duration']} ms" for case_id, entry in ranked)


@pytest.mark.parametrize(("cases", "env"), SUITES)
def test_autobahn_testsuite_cases_pass(daemon_factory, tmp_path, cases, env):
    """Every Autobahn TestSuite case in the suite is OK, NON-STRICT or INFORMATIONAL."""
    daemon = daemon_factory(CONFIG, env=env)
    outdir = tmp_path / "kosoku"
    results, output, elapsed = run_kosoku(daemon.ws_url("/echo"), cases, outdir)
    summary = (
        f"kosoku {' '.join(cases)}: {len(results)} cases in {elapsed:.1f} s (-p {PARALLELISM})\n"
        f"{summarize(results)}\n  slowest: {slowest(results)}"
    )
    print(summary)
    failing = sorted((c for c, e in results.items() if e["behavior"] not in PASSING), key=case_sort_key)
    details = "\n".join(describe_failure(c, results[c], outdir) for c in failing)
    assert not failing, f"{len(failing)} cases failed\n{summary}\n{details}\nreports: {outdir}"
    assert results, f"kosoku ran no cases\n{output}"
