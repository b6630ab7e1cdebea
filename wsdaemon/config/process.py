"""The ``[process]`` table: how many worker processes serve the listeners, and how they are supervised.

No Twisted here, like the rest of the package: this only says what the operator asked for;
:mod:`wsdaemon.workers` does it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

from wsdaemon.config.checks import Report, checked_table, join_key
from wsdaemon.config.model import AUTO_WORKERS, MAX_WORKERS, ListenerConfig, ProcessConfig

_PROCESS_KEYS = ("workers", "heartbeat_timeout_seconds", "restart_delay_max_seconds", "stop_grace_seconds")
_SECONDS_RANGES = {
    "heartbeat_timeout_seconds": (0.5, 3600.0),
    "restart_delay_max_seconds": (0.5, 3600.0),
    "stop_grace_seconds": (0.0, 3600.0),
}
#: Endpoint types whose plain listening socket the main process can hand to its workers.
SHAREABLE_ENDPOINTS = ("tcp", "tcp6", "unix", "systemd")


def available_cpus() -> int:
    """The number of CPUs this process may run on (its affinity mask, as ``taskset`` and cgroups set it)."""
    return len(os.sched_getaffinity(0))


def worker_count(process: ProcessConfig, cpus: Callable[[], int] = available_cpus) -> int:
    """How many workers ``process`` asks for: its number, or for ``"auto"`` one per available CPU."""
    if process.workers == AUTO_WORKERS:
        return max(1, min(MAX_WORKERS, cpus()))
    return int(process.workers)


def parse_process(value: Any, report: Report) -> ProcessConfig:
    """The ``[process]`` table over the defaults (one worker: the single process of before)."""
    defaults = ProcessConfig()
    table = {} if value is None else checked_table(value, "process", _PROCESS_KEYS, report) or {}
    workers = table.get("workers", defaults.workers)
    if workers != AUTO_WORKERS and (type(workers) is not int or not 1 <= workers <= MAX_WORKERS):
        report.bad("process.workers", f'an integer from 1 to {MAX_WORKERS}, or "auto" (one per CPU)', workers)
        workers = defaults.workers
    seconds: dict[str, float] = {}
    for name, (minimum, maximum) in _SECONDS_RANGES.items():
        item = table.get(name, getattr(defaults, name))
        if type(item) not in (int, float) or not minimum <= item <= maximum:
            report.bad(join_key("process", name), f"a number of seconds from {minimum:g} to {maximum:g}", item)
            item = getattr(defaults, name)
        seconds[name] = float(item)
    return ProcessConfig(workers, **seconds)


def refuse_unshared_listeners(
    process: ProcessConfig, listeners: Sequence[ListenerConfig], from_command_line: bool, report: Report
) -> None:
    """With several workers, every listener must be a plain socket the main process can hand over.

    An ``ssl:`` (or plugin) endpoint wraps its socket inside the process that listens, so
    the workers could not serve it; ``tls = true`` on a ``tcp:`` listener is the way to TLS.
    """
    if process.workers == 1:
        return
    for index, listener in enumerate(listeners):
        kind = listener.endpoint.split(":", 1)[0]
        if kind not in SHAREABLE_ENDPOINTS:
            key = f"--listen[{index}]" if from_command_line else f"listeners[{index}].endpoint"
            expected = (
                f"a {', '.join(kind + ':' for kind in SHAREABLE_ENDPOINTS)} endpoint while [process] workers is not 1 "
                "(the main process hands its plain socket to every worker; for TLS use tls = true on a tcp: listener)"
            )
            report.bad(key, expected, listener.endpoint)
