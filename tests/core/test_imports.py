"""House rule 1: the core imports only the stdlib and itself."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parents[2] / "wsdaemon" / "core"
MODULES = sorted(CORE.glob("*.py"))


def imported_modules(path: Path) -> list[str]:
    """Every absolute module name ``path`` imports, at any depth (function-level imports included)."""
    names = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: stays inside wsdaemon.core
                names.append("wsdaemon.core" + ("." + node.module if node.module else ""))
            else:
                assert node.module is not None
                names.append(node.module)
    return names


def test_core_has_modules() -> None:
    """The scan finds the core's modules (so the next test is not vacuous)."""
    assert {p.stem for p in MODULES} >= {"connection", "frames", "handshake", "limits", "utf8"}


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_core_imports_only_stdlib_and_core(path: Path) -> None:
    """A core module imports nothing outside the stdlib and wsdaemon.core (no Twisted, no logger)."""
    bad = [
        name
        for name in imported_modules(path)
        if not (
            name == "wsdaemon.core"
            or name.startswith("wsdaemon.core.")
            or name.split(".")[0] in sys.stdlib_module_names
        )
    ]
    assert bad == []


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_core_does_not_use_logging_or_time(path: Path) -> None:
    """The core never touches a logger or the clock (house rule 1)."""
    roots = {name.split(".")[0] for name in imported_modules(path)}
    assert not roots & {"logging", "time", "asyncio", "socket", "threading", "select"}
