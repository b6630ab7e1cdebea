"""The ``[[static]]`` tables: directories served as plain files at paths no one else owns."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

from wsdaemon.config.checks import MISSING, Report, checked_table
from wsdaemon.config.model import DEMO_PATH, HEALTH_PATH, EndpointConfig, StaticMount

_STATIC_KEYS = ("path", "directory")
_STATIC_PATH = re.compile(r"/|(/[^/?#\s\x00-\x1f\x7f-\x9f]+)+")
_STATIC_PATH_EXPECTED = (
    'a URL path such as "/files": starting with "/", no empty, "." or ".." segments, no "?", "#" or spaces'
)


def static_mounts(
    value: Any, endpoints: Sequence[EndpointConfig], demo_page: bool, report: Report
) -> tuple[StaticMount, ...]:
    """The ``[[static]]`` tables; ``static = []`` (the default) serves no files."""
    if not isinstance(value, list):
        report.bad("static", "an array of tables ([[static]])", value)
        return ()
    taken = {HEALTH_PATH: "the health check", **{_trimmed(endpoint.path): "an endpoint" for endpoint in endpoints}}
    if demo_page:
        taken[DEMO_PATH] = "the demo page ([http] demo_page = true)"
    leaves = [path for path in taken if path != "/"]  # they answer for every path under them
    mounts: list[StaticMount] = []
    for index, item in enumerate(value):
        key = f"static[{index}]"
        table = checked_table(item, key, _STATIC_KEYS, report)
        if table is None:
            continue
        path = _static_path(table.get("path", MISSING), f"{key}.path", taken, leaves, report)
        directory = table.get("directory", MISSING)
        if not isinstance(directory, str) or not directory.startswith("/"):
            report.bad(f"{key}.directory", "the absolute path of a directory to serve", directory)
        elif not os.path.isdir(directory):
            report.bad(f"{key}.directory", "an existing directory", directory)
        elif path is not None:
            taken[path] = f"{key}.path"
            mounts.append(StaticMount(path, directory))
    return tuple(mounts)


def _trimmed(path: str) -> str:
    """A path without its trailing "/" ("/" stays "/")."""
    return path.rstrip("/") or "/"


def _static_path(value: Any, key: str, taken: Mapping[str, str], leaves: Sequence[str], report: Report) -> str | None:
    """A mount path (a trailing "/" is dropped) that no endpoint, page or other mount owns."""
    if not isinstance(value, str):
        report.bad(key, _STATIC_PATH_EXPECTED, value)
        return None
    path = _trimmed(value)
    segments = path.split("/")[1:]
    if not _STATIC_PATH.fullmatch(path) or any(segment in (".", "..") for segment in segments):
        report.bad(key, _STATIC_PATH_EXPECTED, value)
        return None
    if path in taken:
        report.add(key, f"a path not already used by {taken[path]}", repr(value))
        return None
    for leaf in leaves:
        if path.startswith(leaf + "/"):
            report.add(
                key, f"a path outside {leaf} ({taken[leaf]}), which answers for everything under it", repr(value)
            )
            return None
    return path
