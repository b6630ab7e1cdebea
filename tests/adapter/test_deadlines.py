"""A connection's one precise timer on an injected clock (wsdaemon.adapter.deadlines.Deadline)."""

from __future__ import annotations

from twisted.internet.testing import MemoryReactorClock

from wsdaemon.adapter.deadlines import Deadline


def make() -> tuple[Deadline, MemoryReactorClock, list[str]]:
    clock = MemoryReactorClock()
    return Deadline(clock), clock, []


def test_set_calls_back_after_the_given_seconds():
    """A deadline fires exactly when its seconds have passed on the injected clock, not before."""
    deadline, clock, fired = make()
    deadline.set(10, lambda: fired.append("close"))
    clock.advance(9.99)
    assert fired == []
    clock.advance(0.01)
    assert fired == ["close"]


def test_a_deadline_fires_only_once():
    """A deadline is one-shot: more time passing does not call it again."""
    deadline, clock, fired = make()
    deadline.set(1, lambda: fired.append("idle"))
    clock.advance(1)
    clock.advance(100)
    assert fired == ["idle"]


def test_is_set_while_armed_and_not_after_firing():
    """is_set is true from set until the deadline fires."""
    deadline, clock, _ = make()
    assert not deadline.is_set()
    deadline.set(5, lambda: None)
    assert deadline.is_set()
    clock.advance(5)
    assert not deadline.is_set()


def test_cancel_disarms_a_deadline():
    """A cancelled deadline never fires and is no longer set, and leaves no call on the clock."""
    deadline, clock, fired = make()
    deadline.set(5, lambda: fired.append("close"))
    deadline.cancel()
    clock.advance(10)
    assert fired == []
    assert not deadline.is_set()
    assert clock.getDelayedCalls() == []


def test_cancel_when_unset_or_fired_is_harmless():
    """Cancelling a deadline that was never set, or has already fired, does nothing."""
    deadline, clock, fired = make()
    deadline.cancel()
    deadline.set(1, lambda: fired.append("close"))
    clock.advance(1)
    deadline.cancel()
    assert fired == ["close"]


def test_set_again_replaces_the_earlier_arming():
    """Setting it again replaces the old timer: only the new callback fires, at the new time."""
    deadline, clock, fired = make()
    deadline.set(5, lambda: fired.append("old"))
    clock.advance(3)
    deadline.set(5, lambda: fired.append("new"))
    clock.advance(2)
    assert fired == []
    clock.advance(3)
    assert fired == ["new"]
    assert clock.getDelayedCalls() == []


def test_a_callback_may_rearm_it():
    """A callback that sets the deadline again (a periodic check) gets a fresh timer."""
    deadline, clock, fired = make()

    def tick() -> None:
        fired.append(clock.seconds())
        if len(fired) < 3:
            deadline.set(10, tick)

    deadline.set(10, tick)
    clock.pump([10, 10, 10, 10])
    assert fired == [10, 20, 30]
    assert not deadline.is_set()


def test_cancel_inside_its_own_callback_is_safe():
    """A callback that cancels its own deadline (it closes the connection) does not break."""
    deadline, clock, fired = make()
    deadline.set(1, lambda: (fired.append("close"), deadline.cancel()))
    clock.advance(5)
    assert fired == ["close"]
    assert clock.getDelayedCalls() == []
