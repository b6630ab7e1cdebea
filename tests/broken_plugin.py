"""A real plugin module that fails to import, where twisted.plugin looks for plugins (for plugin and log tests)."""

from __future__ import annotations

from pathlib import Path

import pytest

MODULE = "vendor_broken_now"


def install_broken_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, package: str = "twisted.plugins") -> Path:
    """Put ``<package>/vendor_broken_now.py`` (a missing import) on ``package.__path__``; its path.

    ``package`` is ``twisted.plugins`` (the old location, which twist and twistd scan too) or
    ``wsdaemon_plugins`` (wsdaemon's own).
    """
    import importlib

    plugins = importlib.import_module(package)
    folder = tmp_path.joinpath(*package.split("."))
    folder.mkdir(parents=True)
    module = folder / f"{MODULE}.py"
    module.write_text("import no_such_dependency_xyz\n")
    monkeypatch.setattr(plugins, "__path__", [*plugins.__path__, str(folder)])
    return module


def plugin_import_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, object]:
    """The event twisted.plugin logs (log.err, critical) when a scan meets the broken module."""
    from twisted.logger import capturedLogs
    from twisted.plugin import IPlugin, getPlugins

    install_broken_plugin(tmp_path, monkeypatch)
    with capturedLogs() as events:
        list(getPlugins(IPlugin))  # what twist does to find its reactors and subcommands
    (event,) = (event for event in events if "failure" in event)
    return dict(event)
