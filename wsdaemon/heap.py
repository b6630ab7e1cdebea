"""Keep the start-up heap out of the cyclic garbage collector's way (``gc.freeze``).

CPython's cycle collector walks every tracked object of a generation each time
it collects that generation. A started daemon holds some 60,000 such objects
(modules, Twisted, the config, the resource tree, prometheus_client) that live
as long as the process, and under a handshake load each full collection walked
all of them: about 40 ms a time, and about a fifth of the CPU of a handshake
went to the collector. Once the daemon serves, :func:`settle` moves what exists
into the permanent generation, so collections see only what connections make.

A frozen object is never collected as part of a garbage cycle, and a reload
orphans the previous configuration's objects; so :func:`settle` first unfreezes
and collects (whatever died since the last settle is freed), then freezes again.
Objects freed by their reference count, most of them, are freed either way.
"""

from __future__ import annotations

import gc


def settle() -> None:
    """Collect what is garbage now, then keep every object left out of future collections."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()


def leave_alone() -> None:
    """The default where no heap policy was asked for (tests, embedding): change nothing."""
