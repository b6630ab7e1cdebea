"""Keep freed memory for reuse (glibc malloc), so large messages do not fault in fresh pages; give it back after a spike.

glibc serves big allocations (a 1 MiB message, a 256 KiB read) with ``mmap`` or
returns freed heap to the kernel as soon as it passes a threshold; the next
message then touches brand-new pages, and the kernel must fault in and zero
every 4 KiB of them. Under a 1 MiB echo load that was 240 page faults per
message and about a quarter of the daemon's time. Fixing both thresholds at
``allocator_cache_bytes`` keeps up to that much freed memory in the process
for the next message instead.

Those thresholds only act on the top of a heap. The memory that thousands of
closed connections leave between live allocations stays resident until it is
reused: 10,000 wss connections held and closed left the daemon 330-670 MB
above its start. :func:`release_freed_memory` (glibc's ``malloc_trim``) hands
the kernel every free page wherever it lies; one call took that back to about
190 MB above the start, in 15-40 ms. :mod:`wsdaemon.memory_release` decides when.

Only glibc has these knobs. Elsewhere (musl, macOS) nothing changes, and an
operator's own ``GLIBC_TUNABLES=glibc.malloc...`` setting always wins.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Mapping

#: mallopt(3) parameters.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3

#: The range glibc accepts for M_MMAP_THRESHOLD on 64-bit systems (HEAP_MAX_SIZE / 2).
MAX_CACHE_BYTES = 32 * 1024 * 1024
MIN_CACHE_BYTES = 128 * 1024
DEFAULT_CACHE_BYTES = 16 * 1024 * 1024

#: ``[memory] release_after_closed_connections``: this many fewer connections than the peak
#: since the last release make the daemon hand its free pages back (0: never).
DEFAULT_RELEASE_AFTER_CLOSED = 1000


def keep_freed_memory(cache_bytes: int, environ: Mapping[str, str] | None = None) -> bool:
    """Set glibc's trim and mmap thresholds to ``cache_bytes``; whether they were set.

    ``0`` leaves glibc's own adaptive thresholds. Returns False, changing
    nothing, when the C library has no ``mallopt`` or when ``GLIBC_TUNABLES``
    already sets malloc tunables.
    """
    tunables = (os.environ if environ is None else environ).get("GLIBC_TUNABLES", "")
    if not cache_bytes or "glibc.malloc." in tunables:
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, cache_bytes)) and bool(mallopt(_M_TRIM_THRESHOLD, cache_bytes))


def release_freed_memory() -> bool:
    """Give the kernel back the free pages glibc holds anywhere in its heaps; False where there is no ``malloc_trim``.

    It walks every free chunk, so it costs milliseconds on a large, fragmented
    heap: it is for after many connections have gone, not for every tick.
    """
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return False
    trim.argtypes = (ctypes.c_size_t,)
    trim.restype = ctypes.c_int
    trim(0)
    return True


def resident_bytes(statm: str = "/proc/self/statm") -> int | None:
    """This process's resident memory, or None where ``/proc`` does not tell it."""
    try:
        with open(statm, encoding="ascii") as file:
            return int(file.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None
