"""Named per-connection timers on an injected clock (wsdaemon.adapter.deadlines)."""

from __future__ import annotations

from twisted.internet.testing import MemoryReactorClock

from wsdaemon.adapter.deadlines import Deadlines


def make() -> tuple[Deadlines, MemoryReactorClock, list[str]]:
    clock = MemoryReactorClock()
    return Deadlines(clock), clock, []


def test_set_calls_back_after_the_given_seconds():
    """A deadline fires exactly when its seconds have passed on the injected clock, not before."""
    deadlines, clock, fired = make()
    deadlines.set("close", 10, lambda: fired.append("close"))
    clock.advance(9.99)
    assert fired == []
    clock.advance(0.01)
    assert fired == ["close"]


def test_a_deadline_fires_only_once():
    """A deadline is one-shot: more time passing does not call it again."""
    deadlines, clock, fired = make()
    deadlines.set("idle", 1, lambda: fired.append("idle"))
    clock.advance(1)
    clock.advance(100)
    assert fired == ["idle"]


def test_is_set_while_armed_and_not_after_firing():
    """is_set is true from set until the deadline fires."""
    deadlines, clock, _ = make()
    assert not deadlines.is_set("close")
    deadlines.set("close", 5, lambda: None)
    assert deadlines.is_set("close")
    clock.advance(5)
    assert not deadlines.is_set("close")


def test_cancel_disarms_a_deadline():
    """A cancelled deadline never fires and is no longer set, and leaves no call on the clock."""
    deadlines, clock, fired = make()
    deadlines.set("close", 5, lambda: fired.append("close"))
    deadlines.cancel("close")
    clock.advance(10)
    assert fired == []
    assert not deadlines.is_set("close")
    assert clock.getDelayedCalls() == []


def test_cancel_of_an_unset_or_fired_name_is_harmless():
    """Cancelling a name that was never set, or has already fired, does nothing."""
    deadlines, clock, fired = make()
    deadlines.cancel("never")
    deadlines.set("close", 1, lambda: fired.append("close"))
    clock.advance(1)
    deadlines.cancel("close")
    assert fired == ["close"]


def test_set_again_replaces_the_earlier_deadline():
    """Setting a name again replaces the old timer: only the new callback fires, at the new time."""
    deadlines, clock, fired = make()
    deadlines.set("idle", 5, lambda: fired.append("old"))
    clock.advance(3)
    deadlines.set("idle", 5, lambda: fired.append("new"))
    clock.advance(2)
    assert fired == []
    clock.advance(3)
    assert fired == ["new"]
    assert clock.getDelayedCalls() == []


def test_names_are_independent():
    """Different names are different timers: cancelling one leaves the others armed."""
    deadlines, clock, fired = make()
    deadlines.set("close", 2, lambda: fired.append("close"))
    deadlines.set("idle", 1, lambda: fired.append("idle"))
    deadlines.cancel("idle")
    clock.advance(2)
    assert fired == ["close"]


def test_cancel_all_disarms_every_deadline():
    """cancel_all (the connection is gone) disarms every name and leaves the clock empty."""
    deadlines, clock, fired = make()
    for name in ("handshake", "close", "idle"):
        deadlines.set(name, 1, lambda name=name: fired.append(name))
    deadlines.cancel_all()
    clock.advance(10)
    assert fired == []
    assert clock.getDelayedCalls() == []
    assert not any(deadlines.is_set(name) for name in ("handshake", "close", "idle"))


def test_a_callback_may_rearm_its_own_name():
    """A callback that sets its own name again (a periodic check) gets a fresh timer."""
    deadlines, clock, fired = make()

    def tick() -> None:
        fired.append(clock.seconds())
        if len(fired) < 3:
            deadlines.set("idle", 10, tick)

    deadlines.set("idle", 10, tick)
    clock.pump([10, 10, 10, 10])
    assert fired == [10, 20, 30]
    assert not deadlines.is_set("idle")


def test_cancel_all_inside_a_callback_is_safe():
    """A deadline whose callback cancels everything (e.g. it closes the connection) does not break."""
    deadlines, clock, fired = make()
    deadlines.set("close", 1, lambda: (fired.append("close"), deadlines.cancel_all()))
    deadlines.set("idle", 2, lambda: fired.append("idle"))
    clock.advance(5)
    assert fired == ["close"]
