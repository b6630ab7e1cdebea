"""Printing a command's report to a reader that may stop early (``wsdaemon --check-config | head``).

Twisted-free, so every command-line option that prints (``--check-config``,
``--list-handlers``, ``--list-authenticators``) can use it cheaply.
"""

from __future__ import annotations

import os
from typing import TextIO


def write_report(text: str, out: TextIO) -> None:
    """Print ``text``; a reader that stopped early (``--check-config | head``) is not an error.

    The check itself is done, so its status stands. Python's advice for EPIPE is
    followed: the rest of the output goes to /dev/null, or the flush at exit would
    fail again with a traceback (https://docs.python.org/3/library/signal.html#note-on-sigpipe).
    """
    try:
        print(text, file=out)
        out.flush()
    except BrokenPipeError:
        try:
            descriptor = out.fileno()
        except (AttributeError, OSError, ValueError):
            return  # not a file (a test's StringIO): nothing will flush it at exit
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, descriptor)
        os.close(devnull)
