"""Tests for wsdaemon.memory_release: freed memory goes back to the kernel after a spike of connections drains."""

from __future__ import annotations

import dataclasses

from twisted.internet.task import Clock
from twisted.logger import LogEvent, globalLogPublisher

from wsdaemon.admission import Admission
from wsdaemon.config import parse_config
from wsdaemon.memory_release import CHECK_INTERVAL_SECONDS, MemoryReleaseService
from wsdaemon.plugins import discover_handlers
from wsdaemon.service import build_service

MIB = 1024 * 1024


class Harness:
    """A service over a real Admission, with a recording release and a scripted resident size."""

    def __init__(self, after: int = 100, supported: bool = True) -> None:
        self.admission = Admission()
        self.after = after
        self.releases = 0
        self.supported = supported
        self.resident = [300 * MIB, 120 * MIB]
        self.clock = Clock()
        self.service = MemoryReleaseService(
            self.admission, lambda: self.after, self.clock, release=self._release, resident=self._resident
        )
        self.tickets: list = []

    def _release(self) -> bool:
        self.releases += 1
        return self.supported

    def _resident(self) -> int | None:
        return self.resident.pop(0) if self.resident else None

    def open(self, count: int) -> None:
        self.tickets.extend(self.admission.connected(None) for _ in range(count))

    def close(self, count: int) -> None:
        for _ in range(count):
            self.admission.disconnected(self.tickets.pop())


def test_nothing_is_released_until_enough_connections_have_closed() -> None:
    """99 closes under a threshold of 100 do nothing; the 100th makes the next check release."""
    harness = Harness(after=100)
    harness.open(500)
    harness.close(99)
    assert harness.service.check() is False
    harness.close(1)
    assert harness.service.check() is True
    assert harness.releases == 1


def test_a_drained_spike_releases_once() -> None:
    """After a release the peak starts again from the connections open then: no second release for the same closes."""
    harness = Harness(after=100)
    harness.open(1000)
    harness.close(1000)
    assert harness.service.check() is True
    assert harness.service.check() is False
    assert harness.releases == 1


def test_steady_churn_never_releases() -> None:
    """Connections that come and go at a steady level never get the count far enough below the peak."""
    harness = Harness(after=100)
    harness.open(200)
    for _ in range(50):
        harness.close(10)
        harness.open(10)
        assert harness.service.check() is False
    assert harness.releases == 0


def test_a_short_spike_between_checks_is_seen() -> None:
    """The peak is counted as connections open, so a spike that rises and drains between two checks still counts."""
    harness = Harness(after=100)
    harness.service.startService()
    harness.open(300)
    harness.close(300)
    harness.clock.advance(CHECK_INTERVAL_SECONDS)
    assert harness.releases == 1
    harness.service.stopService()


def test_zero_turns_releases_off_and_a_reload_applies_at_the_next_check() -> None:
    """``release_after_closed_connections = 0`` never releases; the value is read again at each check."""
    harness = Harness(after=0)
    harness.open(5000)
    harness.close(5000)
    assert harness.service.check() is False
    harness.after = 1000
    assert harness.service.check() is True


def test_the_timer_checks_every_interval_and_stops_with_the_service() -> None:
    """Checks run every CHECK_INTERVAL_SECONDS while the service runs, and no timer is left when it stops."""
    harness = Harness(after=10)
    harness.service.startService()
    harness.open(20)
    harness.close(20)
    harness.clock.advance(CHECK_INTERVAL_SECONDS - 0.1)
    assert harness.releases == 0
    harness.clock.advance(0.1)
    assert harness.releases == 1
    harness.service.stopService()
    assert harness.clock.getDelayedCalls() == []


def test_the_release_is_logged_with_the_resident_memory_before_and_after() -> None:
    """An operator sees how many connections closed and what the release gave back."""
    events: list[LogEvent] = []
    globalLogPublisher.addObserver(events.append)
    try:
        harness = Harness(after=100)
        harness.open(2000)
        harness.close(1500)
        assert harness.service.check() is True
    finally:
        globalLogPublisher.removeObserver(events.append)
    [event] = [e for e in events if "handed back" in e.get("log_format", "")]
    assert (event["closed"], event["before"], event["now"]) == (1500, 300, 120)


def test_without_malloc_trim_nothing_is_logged() -> None:
    """Off glibc the release cannot happen: the check says so and logs nothing."""
    events: list[LogEvent] = []
    globalLogPublisher.addObserver(events.append)
    try:
        harness = Harness(after=10, supported=False)
        harness.open(20)
        harness.close(20)
        assert harness.service.check() is False
    finally:
        globalLogPublisher.removeObserver(events.append)
    assert not [e for e in events if "handed back" in e.get("log_format", "")]


def test_the_admission_keeps_its_peak_until_told_to_forget_it() -> None:
    """peak_connections is the most open at once; forget_peak starts it from the count now."""
    admission = Admission()
    tickets = [admission.connected(None) for _ in range(7)]
    for ticket in tickets[:5]:
        admission.disconnected(ticket)
    assert (admission.open_connections, admission.peak_connections) == (2, 7)
    admission.forget_peak()
    assert admission.peak_connections == 2


def test_the_daemon_runs_one_release_service_on_its_admission_and_running_config() -> None:
    """build_service wires the release to the admission its listeners count with, and to the config a reload swaps."""
    service = build_service(
        parse_config("[memory]\nrelease_after_closed_connections = 42\n", "test.toml"), discover_handlers(), Clock()
    )
    [release] = [child for child in service if isinstance(child, MemoryReleaseService)]
    assert release.admission is service.factory.admission
    assert release.release_after() == 42
    running = service.runtime.current
    new = dataclasses.replace(running.config, release_after_closed_connections=7)
    service.runtime.swap(dataclasses.replace(running, config=new))  # what a reload does
    assert release.release_after() == 7
