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


def core_module(name: str, imported: str | None) -> str | None:
    """The core module (a file stem, or ``__init__``) an import of ``imported`` from ``name`` loads, if any.

    ``from wsdaemon.core import x`` loads the submodule ``x`` when there is one
    (a ``.py`` file or a compiled accelerator), else the package's ``__init__``.
    """
    if name == "wsdaemon.core":
        if imported is not None and any(CORE.glob(f"{imported}.*")):
            return imported
        return "__init__"
    if name.startswith("wsdaemon.core."):
        return name.removeprefix("wsdaemon.core.").split(".")[0]
    return None


def core_imports(path: Path) -> set[str]:
    """The core modules ``path`` imports, at any depth (function-local and TYPE_CHECKING imports included)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found |= {core_module(alias.name, None) for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            module = "wsdaemon.core" + ("." + node.module if node.module else "") if node.level else node.module
            assert module is not None
            found |= {core_module(module, alias.name) for alias in node.names}
    found.discard(None)
    return {name for name in found if name is not None}


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every cycle of ``graph`` found by a depth-first search, each as the path that closes it."""
    cycles: list[list[str]] = []
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> None:
        if node in path:
            cycles.append([*path[path.index(node) :], node])
            return
        if node in done:
            return
        for target in sorted(graph.get(node, ())):
            visit(target, [*path, node])
        done.add(node)

    for node in sorted(graph):
        visit(node, [])
    return cycles


def test_cycle_finder_finds_a_cycle() -> None:
    """The cycle search reports a two-module circle and passes a chain (so the next test can fail)."""
    assert import_cycles({"close": {"errors"}, "errors": {"close"}}) == [["close", "errors", "close"]]
    assert import_cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []


def test_core_import_scan_sees_function_local_imports(tmp_path: Path) -> None:
    """An import inside a function body counts as an edge (the kind that hid the close/errors circle)."""
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from wsdaemon.core.errors import CloseCode\n", encoding="utf-8")
    assert core_imports(module) == {"errors"}


def test_core_has_no_import_cycle() -> None:
    """No core module imports, directly or through others, a module that imports it back."""
    graph = {path.stem: core_imports(path) - {path.stem} for path in MODULES}
    graph.pop("__init__")  # the package imports everything; nothing in the core imports the package
    assert all("__init__" not in targets for targets in graph.values()), graph
    assert import_cycles(graph) == []
