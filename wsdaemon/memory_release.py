"""Hand freed memory back to the kernel once many connections have closed (a spike, a reconnect storm).

A connection's memory comes back to glibc when it closes, but glibc returns it
to the kernel only from the top of its heap; what closed connections leave
between live allocations stays resident. After 10,000 wss connections came
and went, the daemon stayed 330-670 MB above its start until this released
most of it (see :mod:`wsdaemon.allocator`).

A release walks the whole heap (15-40 ms on one left by 10,000 TLS
connections, a pause of the reactor), so it is not done on a timer alone:
every ``CHECK_INTERVAL_SECONDS`` this service looks at the admission's counts,
and releases only when ``[memory] release_after_closed_connections`` fewer
connections are open than at the peak since the last release. Steady churn
never gets there; a spike that drains does, once.
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.application.service import Service
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from wsdaemon.admission import Admission
from wsdaemon.allocator import release_freed_memory, resident_bytes

#: How often the counts are looked at (reading two integers).
CHECK_INTERVAL_SECONDS = 10.0

_MIB = 1024 * 1024


class MemoryReleaseService(Service):
    """Releases freed memory when the open connections have fallen far enough below their peak.

    Args:
        admission: the daemon's connection counts.
        release_after: the running ``[memory] release_after_closed_connections``
            (read at each check, so a reload applies); 0 turns releases off.
        clock: the reactor's time.
        release: gives the free pages back; False where it cannot (not glibc).
        resident: the process's resident bytes, for the log line (None: unknown).
    """

    log = Logger()

    def __init__(
        self,
        admission: Admission,
        release_after: Callable[[], int],
        clock: IReactorTime,
        *,
        release: Callable[[], bool] = release_freed_memory,
        resident: Callable[[], int | None] = resident_bytes,
    ) -> None:
        self.admission = admission
        self.release_after = release_after
        self.clock = clock
        self.release = release
        self.resident = resident
        self._timer: LoopingCall | None = None

    def startService(self) -> None:
        super().startService()  # type: ignore[no-untyped-call]  # super(): mypy#16653
        self._timer = LoopingCall(self.check)
        self._timer.clock = self.clock
        self._timer.start(CHECK_INTERVAL_SECONDS, now=False)

    def stopService(self) -> None:
        super().stopService()  # type: ignore[no-untyped-call]  # super(): mypy#16653
        if self._timer is not None and self._timer.running:
            self._timer.stop()
        self._timer = None

    def check(self) -> bool:
        """Release if enough connections closed since the peak; whether it released."""
        after = self.release_after()
        admission = self.admission
        closed = admission.peak_connections - admission.open_connections
        if after <= 0 or closed < after:
            return False
        admission.forget_peak()
        before = self.resident()
        if not self.release():
            return False
        now = self.resident()
        self.log.info(
            "{closed} fewer connections than at the peak: freed memory handed back to the kernel"
            " (resident {before} -> {now} MiB)",
            closed=closed,
            before="?" if before is None else before // _MIB,
            now="?" if now is None else now // _MIB,
        )
        return True
