"""The token buckets of wsdaemon.ratelimit, with the time passed in (no clock, no reactor)."""

from __future__ import annotations

import pytest

from wsdaemon.ratelimit import BucketTable, TokenBucket, retry_after_seconds


def test_a_full_bucket_allows_a_burst_then_refuses_with_the_wait_for_one_token():
    """burst events at once are allowed; the next one is told how long until a token refills."""
    bucket = TokenBucket(burst=3, now=100.0)
    assert [bucket.take(100.0, rate=2.0, burst=3) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take(100.0, rate=2.0, burst=3) == pytest.approx(0.5)
    assert bucket.take(100.25, rate=2.0, burst=3) == pytest.approx(0.25)
    assert bucket.take(100.5, rate=2.0, burst=3) == 0.0


def test_a_bucket_refills_at_rate_up_to_its_burst():
    """After a long pause only burst tokens are there, not more."""
    bucket = TokenBucket(burst=2, now=0.0)
    bucket.take(0.0, rate=1.0, burst=2)
    bucket.take(0.0, rate=1.0, burst=2)
    assert bucket.level(1000.0, rate=1.0, burst=2) == 2.0
    assert [bucket.take(1000.0, rate=1.0, burst=2) for _ in range(3)][:2] == [0.0, 0.0]


def test_a_refused_event_takes_nothing():
    """Refused attempts do not dig the bucket deeper: the wait does not grow with retries."""
    bucket = TokenBucket(burst=1, now=0.0)
    bucket.take(0.0, rate=1.0, burst=1)
    waits = [bucket.take(0.5, rate=1.0, burst=1) for _ in range(5)]
    assert waits == [pytest.approx(0.5)] * 5


def test_time_going_backwards_never_adds_tokens():
    """A clock step back (the reactor's clock is monotonic, but be safe) refills nothing."""
    bucket = TokenBucket(burst=1, now=10.0)
    bucket.take(10.0, rate=1.0, burst=1)
    assert bucket.take(5.0, rate=1.0, burst=1) == pytest.approx(1.0)


@pytest.mark.parametrize(("wait", "header"), [(0.001, 1), (0.5, 1), (1.0, 1), (1.01, 2), (7.3, 8)])
def test_retry_after_is_whole_seconds_rounded_up(wait, header):
    """Retry-After is an integer, the wait rounded up, never 0."""
    assert retry_after_seconds(wait) == header


def test_each_key_has_its_own_bucket():
    """One client spending its burst leaves another's untouched."""
    table = BucketTable()
    assert [table.take("a", 0.0, 1.0, 2, 100) for _ in range(3)] == [0.0, 0.0, pytest.approx(1.0)]
    assert table.take("b", 0.0, 1.0, 2, 100) == 0.0


def test_the_table_never_holds_more_than_max_keys():
    """Cycling through many addresses keeps at most max_keys buckets; the least recently used go first."""
    table = BucketTable()
    for n in range(1000):
        table.take(f"10.0.{n // 256}.{n % 256}", 0.0, 1.0, 5, 16)
        assert len(table) <= 16
    assert len(table) == 16


def test_refilled_buckets_are_dropped_before_a_throttled_one():
    """A full bucket is the same as none: it goes first, and a throttled client keeps its state."""
    table = BucketTable()
    for _ in range(2):
        table.take("throttled", 0.0, 1.0, 2, 3)
    table.take("idle", 0.0, 1.0, 2, 3)  # one token taken at t=0, full again at t=1
    table.take("throttled", 0.5, 1.0, 2, 3)  # refused; now the most recently used
    table.take("new1", 1.0, 1.0, 2, 3)  # drops "idle" (full), keeps "throttled" (1 token)
    table.take("new2", 1.0, 1.0, 2, 3)
    assert len(table) == 3
    assert [table.take("throttled", 1.0, 1.0, 2, 3) for _ in range(2)] == [0.0, pytest.approx(1.0)]
