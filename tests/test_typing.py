"""The tooling gates of DESIGN §2.8: mypy --strict (with mypy-zope) and ruff, run as a developer would.

Both run from the repository root with its pyproject.toml, so the test checks
exactly the configuration a developer's ``mypy`` and ``ruff`` use. mypy keeps
its incremental cache in ``.mypy_cache``: the first run takes tens of seconds,
later ones a few.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
LINTED = ["wsdaemon", "tests", "twisted", "examples"]


def run(command: list[str]) -> subprocess.CompletedProcess[str]:
    """Run ``command`` in the repository root; its output, both streams together."""
    return subprocess.run(
        command, check=False, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300
    )


def ruff() -> str:
    """The ruff executable next to this Python (a venv's bin/), else on PATH; fails when there is none."""
    here = Path(sys.executable).with_name("ruff")
    found = str(here) if here.exists() else shutil.which("ruff")
    if found is None:
        pytest.fail("ruff is not installed (pip install -e '.[test]')")
    return found


def test_mypy_strict_passes():
    """mypy, as configured in pyproject.toml (strict, mypy-zope, packages = wsdaemon), finds nothing."""
    for module in ("mypy", "mypy_zope"):
        if importlib.util.find_spec(module) is None:
            pytest.fail(f"{module} is not installed (pip install -e '.[test]')")
    result = run([sys.executable, "-m", "mypy"])
    assert result.returncode == 0, result.stdout


def test_ruff_check_passes():
    """ruff's lint rules (pyproject.toml [tool.ruff.lint]) pass on all code."""
    result = run([ruff(), "check", *LINTED])
    assert result.returncode == 0, result.stdout


def test_ruff_format_is_clean():
    """All code is as ``ruff format`` writes it."""
    result = run([ruff(), "format", "--check", *LINTED])
    assert result.returncode == 0, result.stdout
