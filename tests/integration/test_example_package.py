"""The example third-party handler package (examples/shout), installed for real and used through the config.

It is built and installed with pip into a temporary folder (``--target``),
which is put on the daemon's PYTHONPATH: wsdaemon finds plugins in any
``sys.path`` entry's ``wsdaemon_plugins/``, exactly as for a package installed
into site-packages. The example's own tests (written with wsdaemon.testing)
run against that installed copy too.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from websockets.sync.client import connect

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "shout"
TIMEOUT = 10.0
CONFIG = """
[[endpoints]]
path = "/shout"
handler = "shout"
[endpoints.options]
suffix = "!!"
"""


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """examples/shout built and installed with pip into a temporary folder (nothing written to the repository)."""
    work = tmp_path_factory.mktemp("example")
    source = work / "source"
    shutil.copytree(
        EXAMPLE, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__", ".pytest_cache")
    )
    target = work / "site"
    command = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--no-deps",
        "--no-build-isolation",
        "--target",
        str(target),
        str(source),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (target / "wsdaemon_plugins" / "wsdaemon_shout.py").is_file()
    assert not (target / "wsdaemon_plugins" / "__init__.py").exists()  # wsdaemon ships that one
    return target


@pytest.fixture
def on_pythonpath(installed: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Daemons started by this test see the installed example (the fixture environment is ours)."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(installed), os.environ.get("PYTHONPATH")])))
    return installed


def test_installed_example_serves_messages_through_the_config(on_pythonpath, daemon_factory):
    """With the example installed, handler = "shout" in the config serves it, with its option applied."""
    daemon = daemon_factory(CONFIG)
    with connect(daemon.ws_url("/shout"), proxy=None, open_timeout=TIMEOUT) as client:
        client.send("hello")
        client.send("plugins")
        assert [client.recv(TIMEOUT), client.recv(TIMEOUT)] == ["HELLO!!", "PLUGINS!!"]


def test_list_handlers_shows_the_example_with_its_option(on_pythonpath):
    """--list-handlers lists the third-party handler next to the built-in ones, with its description and option."""
    result = subprocess.run(
        [sys.executable, "-m", "twisted", "wsdaemon", "--list-handlers"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "shout: answers every text message in capitals (an example third-party handler)" in lines
    assert any(line.strip().startswith("suffix: ") for line in lines)
    assert {"broadcast", "echo", "process", "tcp", "shout"} <= {
        line.split(":")[0] for line in lines if not line.startswith(" ")
    }


def test_bad_example_option_stops_the_daemon_naming_it(on_pythonpath, run_daemon_expecting_exit: Callable[[str], Any]):
    """An option the example rejects stops the daemon before it listens, naming the endpoint, option and expectation."""
    exited = run_daemon_expecting_exit(CONFIG.replace('suffix = "!!"', "suffix = 42"))
    assert exited.returncode != 0
    assert "endpoints[0].options.suffix: expected a string of at most 16 characters, got 42" in exited.stderr


def test_example_own_tests_pass_against_the_installed_package(installed, tmp_path):
    """The example's own tests, written with wsdaemon.testing, pass against the installed copy."""
    tests = tmp_path / "tests"
    shutil.copytree(EXAMPLE / "tests", tests)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(installed), os.environ.get("PYTHONPATH")])))
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tests)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert " passed" in result.stdout
