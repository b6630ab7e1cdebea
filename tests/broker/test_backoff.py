"""Reconnect delays (wsdaemon.broker.backoff)."""

from __future__ import annotations

from wsdaemon.broker.backoff import Backoff


def test_delays_double_up_to_the_maximum_with_jitter_between_half_and_all():
    """With jitter 0 each delay is half its step, with jitter ~1 the whole step; steps double and stop at the max."""
    low = Backoff(0.5, 4.0, uniform=lambda: 0.0)
    assert [low.next_delay() for _ in range(6)] == [0.25, 0.5, 1.0, 2.0, 2.0, 2.0]
    high = Backoff(0.5, 4.0, uniform=lambda: 0.999999)
    assert [round(high.next_delay(), 3) for _ in range(5)] == [0.5, 1.0, 2.0, 4.0, 4.0]


def test_reset_starts_again_from_the_first_step():
    """After a connection succeeded, the next loss waits the first (short) delay again."""
    backoff = Backoff(1.0, 60.0, uniform=lambda: 0.0)
    for _ in range(10):
        backoff.next_delay()
    backoff.reset()
    assert backoff.next_delay() == 0.5


def test_many_failures_never_overflow():
    """Thousands of failed attempts keep the delay at the maximum (no float overflow)."""
    backoff = Backoff(0.5, 30.0, uniform=lambda: 0.5)
    for _ in range(5000):
        delay = backoff.next_delay()
    assert delay == 22.5
