"""sd_notify messages and watchdog settings (wsdaemon.systemd), with a recording sender instead of a socket."""

from __future__ import annotations

import pytest
from twisted.logger import LogLevel, globalLogPublisher

from wsdaemon.systemd import Notifier, socket_address, watchdog_seconds


class Recorder:
    """Stands in for the datagram socket: keeps (message lines, address)."""

    def __init__(self, error: OSError | None = None) -> None:
        self.sent: list[tuple[list[str], str]] = []
        self.error = error

    def __call__(self, data: bytes, address: str) -> None:
        if self.error is not None:
            raise self.error
        self.sent.append((data.decode("utf-8").split("\n"), address))


def notifier(address: str | None = "/run/systemd/notify") -> tuple[Notifier, Recorder]:
    recorder = Recorder()
    return Notifier(address, recorder), recorder


def test_abstract_socket_address_starts_with_a_nul():
    """An address starting with "@" is in the abstract namespace: "@name" becomes "\\0name"."""
    assert socket_address("@/org/freedesktop/systemd1/notify/123") == "\0/org/freedesktop/systemd1/notify/123"


def test_path_socket_address_is_unchanged():
    """A filesystem socket path is used as it is."""
    assert socket_address("/run/systemd/notify") == "/run/systemd/notify"


def test_ready_sends_ready_and_status_in_one_datagram():
    """ready() sends READY=1 and STATUS= together, to NOTIFY_SOCKET."""
    sender, recorder = notifier()
    sender.ready("3 connections")
    assert recorder.sent == [(["READY=1", "STATUS=3 connections"], "/run/systemd/notify")]


def test_reloading_carries_the_monotonic_time():
    """reloading() sends RELOADING=1 with MONOTONIC_USEC (systemd >= 253 needs it)."""
    sender, recorder = notifier()
    sender.reloading()
    ((lines, _),) = recorder.sent
    assert lines[0] == "RELOADING=1"
    assert lines[1].startswith("MONOTONIC_USEC=") and lines[1].split("=")[1].isdigit()


def test_stopping_status_and_watchdog_messages():
    """stopping(), status() and watchdog() send STOPPING=1, STATUS= and WATCHDOG=1."""
    sender, recorder = notifier()
    sender.stopping("draining 2 WebSockets")
    sender.status("idle")
    sender.watchdog()
    assert [lines for lines, _ in recorder.sent] == [
        ["STOPPING=1", "STATUS=draining 2 WebSockets"],
        ["STATUS=idle"],
        ["WATCHDOG=1"],
    ]


def test_without_notify_socket_nothing_is_sent():
    """Outside systemd (no NOTIFY_SOCKET) every call is a no-op."""
    sender, recorder = notifier(None)
    sender.ready("x")
    sender.watchdog()
    assert not sender.enabled
    assert recorder.sent == []


def test_from_environment_reads_notify_socket():
    """from_environment takes the address from NOTIFY_SOCKET; an empty value means none."""
    assert Notifier.from_environment({"NOTIFY_SOCKET": "@abc"}).address == "@abc"
    assert Notifier.from_environment({"NOTIFY_SOCKET": ""}).address is None
    assert Notifier.from_environment({}).address is None


def test_a_failing_send_is_logged_once_and_never_raises():
    """If the socket is gone, the daemon goes on: one warning, no exception."""
    events: list[dict] = []
    globalLogPublisher.addObserver(events.append)
    try:
        sender = Notifier("/nonexistent", Recorder(ConnectionRefusedError(111, "Connection refused")))
        sender.ready("x")
        sender.watchdog()
    finally:
        globalLogPublisher.removeObserver(events.append)
    warnings = [
        event
        for event in events
        if event.get("log_level") == LogLevel.warn and event.get("log_namespace", "").startswith("wsdaemon.systemd")
    ]
    assert len(warnings) == 1


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"WATCHDOG_USEC": "30000000"}, 30.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "4242"}, 30.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}, None),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
        ({}, None),
    ],
)
def test_watchdog_seconds_follows_sd_watchdog_enabled(environ, expected):
    """WATCHDOG_USEC gives the timeout; a WATCHDOG_PID of another process, zero or junk disables it."""
    assert watchdog_seconds(environ, 4242) == expected
