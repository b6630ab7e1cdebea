"""The ``process`` handler's options: validated once, when the endpoint is built.

Everything that can be wrong in an endpoint's options is found here, at startup or
on reload, never at a client's first connection: the program must exist and be
executable now, and the working directory must exist.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from wsdaemon.handlers.options import OptionReader

#: How stdout and stdin are cut into messages: by line ("text"), or as read ("binary").
MODES = ("text", "binary")


@dataclass(frozen=True)
class ProcessSettings:
    """An endpoint's validated ``process`` options (see ``--list-handlers``)."""

    command: tuple[str, ...]
    executable: str
    mode: str = "text"
    max_processes: int = 64
    kill_timeout_seconds: float = 5.0
    max_line_bytes: int = 1024 * 1024
    working_directory: str | None = None
    environment: Mapping[str, str] = field(default_factory=dict)


def find_executable(program: str) -> str | None:
    """``program`` as an executable path: a path is taken as is, a bare name is looked up on PATH.

    Returns:
        The path to run, or None when there is no such executable file.
    """
    if os.sep in program:
        return program if os.path.isfile(program) and os.access(program, os.X_OK) else None
    return shutil.which(program)


def read_settings(options: Mapping[str, Any]) -> ProcessSettings:
    """Validate the options; the program must exist now, not at the first connection.

    Raises:
        HandlerOptionsError: an option is missing, has the wrong type or names no program
            (``InvalidHandlerOptions`` when several are: all of them are reported at once).
    """
    read = OptionReader(options, collect=True)  # every bad option at once
    command = read.strings(
        "command", expected='the program and its arguments, such as ["/usr/bin/cat"] (a non-empty list of strings)'
    )
    executable = find_executable(command[0]) if command else None
    if command and executable is None:
        expected = "a list whose first item is an executable program (a path, or a name found on PATH)"
        read.report("command", expected, command[0])
    directory = options.get("working_directory")
    if directory is not None and (
        not isinstance(directory, str) or not os.path.isabs(directory) or not os.path.isdir(directory)
    ):
        read.report("working_directory", "the absolute path of an existing directory", directory)
    defaults = ProcessSettings((), "")
    settings = ProcessSettings(
        command=command,
        executable=executable or "",
        mode=read.choice("mode", defaults.mode, MODES),
        max_processes=read.integer("max_processes", defaults.max_processes, 1, 100_000),
        kill_timeout_seconds=read.number("kill_timeout_seconds", defaults.kill_timeout_seconds, 0.1, 3600),
        max_line_bytes=read.integer("max_line_bytes", defaults.max_line_bytes, 1, 2**30),
        working_directory=directory,
        environment=read.string_table("environment"),
    )
    read.check()
    return settings
