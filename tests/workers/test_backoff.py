"""Restart delays (wsdaemon.workers.backoff): at once, then doubling while a worker keeps dying young."""

from __future__ import annotations

from wsdaemon.workers.backoff import FIRST_DELAY_SECONDS, RestartBackoff


def test_first_exit_restarts_at_once():
    """A worker's first death is restarted with no wait."""
    assert RestartBackoff(30).delay_after_exit(0.1) == 0.0


def test_quick_exits_in_a_row_double_the_wait_up_to_the_cap():
    """Each further death soon after a start waits twice as long, from 0.5 s, never more than the cap."""
    backoff = RestartBackoff(10)
    delays = [backoff.delay_after_exit(0.2) for _ in range(8)]
    assert delays == [0.0, FIRST_DELAY_SECONDS, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0]


def test_a_worker_that_ran_as_long_as_the_cap_counts_as_healthy_again():
    """After a crash loop, a death after running at least the cap restarts at once again."""
    backoff = RestartBackoff(10)
    for _ in range(5):
        backoff.delay_after_exit(0.2)
    assert backoff.delay_after_exit(10.0) == 0.0
    assert backoff.delay_after_exit(0.2) == FIRST_DELAY_SECONDS


def test_deaths_of_a_long_running_worker_never_wait():
    """A worker that runs a while between deaths is always restarted at once."""
    backoff = RestartBackoff(10)
    assert [backoff.delay_after_exit(60.0) for _ in range(5)] == [0.0] * 5
