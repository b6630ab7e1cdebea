"""wsdaemon.heap: the start-up heap frozen out of the cycle collector, without leaking what a reload orphans."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from wsdaemon import heap


class Node:
    """A garbage-cycle member (only the cycle collector can free it)."""

    def __init__(self) -> None:
        self.other: Node | None = None


def cycle() -> Node:
    first, second = Node(), Node()
    first.other, second.other = second, first
    return first


@pytest.fixture
def unfrozen() -> Iterator[None]:
    """The test process is left as it was: nothing frozen afterwards."""
    yield
    gc.unfreeze()


def test_settle_moves_what_exists_out_of_collections(unfrozen):
    """After settle, the objects alive then are in the permanent generation, which collections skip."""
    assert gc.get_freeze_count() == 0
    alive = Node()
    heap.settle()
    assert gc.get_freeze_count() > 0
    assert all(alive is not tracked for generation in range(3) for tracked in gc.get_objects(generation))


def test_a_cycle_orphaned_after_one_settle_is_freed_by_the_next(unfrozen):
    """What a reload orphans is not leaked: the next settle collects it (a plain collection could not)."""
    running = [cycle()]  # the previous configuration, in use when the daemon settles
    orphaned = weakref.ref(running[0])
    heap.settle()
    running.clear()  # a reload swapped it out
    gc.collect()
    assert orphaned() is not None, "frozen: a collection does not look at it"
    heap.settle()
    assert orphaned() is None


def test_leave_alone_changes_nothing(unfrozen):
    """The default of tests and embedders: no object is frozen."""
    heap.leave_alone()
    assert gc.get_freeze_count() == 0
