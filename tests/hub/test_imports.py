"""The hub is sans-I/O like the core: it imports only the stdlib, the core and itself."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.core.test_imports import imported_modules

HUB = Path(__file__).resolve().parents[2] / "wsdaemon" / "hub"
MODULES = sorted(HUB.glob("*.py"))


def test_hub_has_modules() -> None:
    """The scan finds the hub's modules (so the next tests are not vacuous)."""
    assert {p.stem for p in MODULES} >= {"channels", "envelope", "history", "positions", "recovery", "subscription"}


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_hub_imports_only_stdlib_core_and_hub(path: Path) -> None:
    """A hub module imports nothing outside the stdlib, wsdaemon.core and wsdaemon.hub (no Twisted, no Redis)."""
    bad = [
        name
        for name in imported_modules(path)
        if not (
            name in ("wsdaemon.core", "wsdaemon.hub")
            or name.startswith(("wsdaemon.core.", "wsdaemon.hub."))
            or name.split(".")[0] in sys.stdlib_module_names
        )
    ]
    assert bad == []


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_hub_uses_no_clock_randomness_logger_or_io(path: Path) -> None:
    """Time and randomness are passed in, never read: no time, random, secrets, os, logging or sockets."""
    roots = {name.split(".")[0] for name in imported_modules(path)}
    assert not roots & {"logging", "time", "random", "secrets", "os", "asyncio", "socket", "threading", "select"}


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_hub_uses_absolute_imports(path: Path) -> None:
    """The hub imports itself by absolute name, so the scan above sees every import for what it is."""
    text = path.read_text(encoding="utf-8")
    assert "from ." not in text
