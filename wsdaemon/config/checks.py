"""Generic checks on parsed TOML values, each reporting what does not fit to a :class:`Report`.

Each check records its problems and returns something usable (often empty), so validation goes
on and every problem in the file is reported at once.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Sequence
from typing import Any

from wsdaemon.config.model import ConfigError, Problem

MISSING: Any = object()  # stands for a required key that is absent; described as "missing"
_MAX_GOT_CHARS = 60


class Report:
    """The problems found so far; validation goes on past each one so all are reported."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def add(self, key: str, expected: str, got: str) -> None:
        """Record a problem whose ``got`` is already in words."""
        self.problems.append(Problem(key, expected, got))

    def bad(self, key: str, expected: str, value: Any) -> None:
        """Record a value that does not fit, described close to how it was written."""
        self.add(key, expected, _describe(value))

    def raise_if_any(self, source: str) -> None:
        """Raise everything collected as one error."""
        if self.problems:
            raise ConfigError(source, self.problems)


def _describe(value: Any) -> str:
    """A short, one-line rendering of a TOML value for the "got" part of a problem."""
    if value is MISSING:
        return "missing"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a table"
    text = repr(value)
    return text if len(text) <= _MAX_GOT_CHARS else text[: _MAX_GOT_CHARS - 3] + "..."


def join_key(prefix: str, name: str) -> str:
    """A dotted key path; a name that is not a bare TOML key is quoted, as TOML would."""
    if not re.fullmatch(r"[A-Za-z0-9_-]+", name):
        name = '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return f"{prefix}.{name}" if prefix else name


def checked_table(value: Any, key: str, allowed: Sequence[str], report: Report) -> dict[str, Any] | None:
    """The value if it is a table, else None; unknown keys (usually typos) are reported."""
    if not isinstance(value, dict):
        report.bad(key, "a table", value)
        return None
    for name in value:
        if name not in allowed:
            unknown_key(join_key(key, name), name, allowed, report)
    return value


def did_you_mean(name: str, allowed: Sequence[str]) -> str:
    """`` (did you mean X?)`` with the known name nearest to ``name`` (difflib), or nothing."""
    close = difflib.get_close_matches(name, allowed, n=1)
    return f" (did you mean {close[0]}?)" if close else ""


def unknown_key(key: str, name: str, allowed: Sequence[str], report: Report) -> None:
    """Report one unknown key, suggesting the nearest known one."""
    report.add(key, "one of: " + ", ".join(allowed), "an unknown key" + did_you_mean(name, allowed))


def array_of_tables(value: Any, key: str, report: Report) -> list[Any]:
    """The value if it is a non-empty list, else an empty list after reporting."""
    if not isinstance(value, list):
        report.bad(key, f"an array of tables ([[{key}]])", value)
        return []
    if not value:
        report.add(key, f"at least one [[{key}]] table", "an empty list")
    return value


def string_list(value: Any, key: str, check: Callable[[str], bool], expected: str, report: Report) -> tuple[str, ...]:
    """A list of strings, each checked on its own so every bad item is named."""
    if not isinstance(value, list):
        report.bad(key, f"a list of strings, each {expected}", value)
        return ()
    for index, item in enumerate(value):
        if not isinstance(item, str) or not check(item):
            report.bad(f"{key}[{index}]", expected, item)
    return tuple(item for item in value if isinstance(item, str))


def file_path(table: dict[str, Any], name: str, key: str, expected: str, report: Report, required: bool = True) -> Any:
    """A file path (non-empty string); absent is a problem only when ``required``."""
    value = table.get(name, MISSING if required else None)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        report.bad(join_key(key, name), expected, value)
        return ""
    return value


def choice(table: dict[str, Any], name: str, key: str, choices: Sequence[str], report: Report) -> str:
    """One of ``choices`` (the first is the default)."""
    value = table.get(name, choices[0])
    if value not in choices or not isinstance(value, str):
        report.bad(join_key(key, name), "one of " + ", ".join(f'"{option}"' for option in choices), value)
        return choices[0]
    return value
