"""When to restart a worker that exited: at once, unless it keeps dying young.

A worker that ran a while and then died (a bug hit once, an operator's ``kill``) is replaced
at once: the port must keep its capacity. A worker that dies soon after every start (a
crash loop: a broken handler, a full disk) must not spin the CPU restarting it, so its
restarts wait 0.5 s, 1 s, 2 s … up to ``restart_delay_max_seconds``. A worker that then
stays up for ``restart_delay_max_seconds`` counts as healthy again.

Pure arithmetic: the supervisor passes in how long the worker ran.
"""

from __future__ import annotations

from dataclasses import dataclass

#: The wait before the second restart in a row of a worker that died young; it doubles after.
FIRST_DELAY_SECONDS = 0.5


@dataclass
class RestartBackoff:
    """The restart delays of one worker slot.

    Args:
        max_delay_seconds: the cap of the doubling, and how long a worker must run to count
            as healthy again (``[process] restart_delay_max_seconds``).
    """

    max_delay_seconds: float
    quick_exits: int = 0  # exits in a row, each less than max_delay_seconds after its start

    def delay_after_exit(self, ran_seconds: float) -> float:
        """The seconds to wait before the next start, given how long the last one ran."""
        if ran_seconds >= self.max_delay_seconds:
            self.quick_exits = 0
        self.quick_exits += 1
        if self.quick_exits == 1:
            return 0.0
        return min(self.max_delay_seconds, FIRST_DELAY_SECONDS * 2.0 ** (self.quick_exits - 2))
