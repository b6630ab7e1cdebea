"""Keep freed memory for reuse (glibc malloc), so large messages do not fault in fresh pages.

glibc serves big allocations (a 1 MiB message, a 256 KiB read) with ``mmap`` or
returns freed heap to the kernel as soon as it passes a threshold; the next
message then touches brand-new pages, and the kernel must fault in and zero
every 4 KiB of them. Under a 1 MiB echo load that was 240 page faults per
message and about a quarter of the daemon's time. Fixing both thresholds at
``allocator_cache_bytes`` keeps up to that much freed memory in the process
for the next message instead.

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
