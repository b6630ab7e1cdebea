"""The turn writer (wsdaemon.adapter.immediate.TurnWriter): writes made outside a read leave once per turn."""

from __future__ import annotations

from twisted.internet.testing import MemoryReactorClock

from wsdaemon.adapter.turn import TurnWriter


class Member:
    """Records when the turn writer asks it to write."""

    def __init__(self, name: str, log: list[str]) -> None:
        self.name = name
        self.log = log

    def flush_now(self) -> None:
        self.log.append(self.name)


def test_members_are_written_once_each_when_the_turn_ends_in_the_order_first_touched() -> None:
    clock = MemoryReactorClock()
    writer = TurnWriter(clock, max_bytes=1000)
    log: list[str] = []
    first, second = Member("first", log), Member("second", log)
    for member in (first, second, first, second, first):  # three publishes reaching the same two members
        writer.add(member, 10)
    assert log == []  # nothing before the turn ends
    assert len(writer) == 2
    clock.advance(0)
    assert log == ["first", "second"]
    assert len(writer) == 0


def test_a_turn_costs_one_timer_however_many_members() -> None:
    clock = MemoryReactorClock()
    writer = TurnWriter(clock, max_bytes=1000)
    log: list[str] = []
    for index in range(1000):
        writer.add(Member(str(index), log), 10)
    assert len(clock.getDelayedCalls()) == 1
    clock.advance(0)
    assert len(log) == 1000
    assert clock.getDelayedCalls() == []


def test_a_member_touched_while_the_writer_writes_is_written_in_a_turn_of_its_own() -> None:
    clock = MemoryReactorClock()
    writer = TurnWriter(clock, max_bytes=1000)
    log: list[str] = []
    later = Member("later", log)

    class Relaying(Member):
        def flush_now(self) -> None:
            super().flush_now()
            writer.add(later, 10)  # e.g. a close that makes the hub tell another member

    writer.add(Relaying("relaying", log), 10)
    clock.advance(0)  # a memory clock runs the new turn's call at once; the reactor would in its next turn
    assert log == ["relaying", "later"]
    assert clock.getDelayedCalls() == [] and len(writer) == 0


def test_more_than_max_bytes_waiting_is_refused_so_the_caller_writes_at_once() -> None:
    """The backpressure bound: at most max_bytes wait for the turn; past it the connection is dropped from the turn."""
    clock = MemoryReactorClock()
    writer = TurnWriter(clock, max_bytes=100)
    log: list[str] = []
    member = Member("member", log)
    assert writer.add(member, 60)
    assert not writer.add(member, 60)  # 120 would wait: the caller writes everything now
    assert len(writer) == 0
    assert writer.add(member, 60)  # and the next turn starts from nothing
    clock.advance(0)
    assert log == ["member"]
