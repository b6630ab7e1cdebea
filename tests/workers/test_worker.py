"""The worker's side (wsdaemon.workers.worker): listeners it serves, its channel, its heartbeat."""

from __future__ import annotations

from twisted.internet.testing import MemoryReactorClock, StringTransport

from wsdaemon.config import ListenerConfig, TLSConfig
from wsdaemon.systemd import Notifier
from wsdaemon.workers.channel import MessageDecoder, MessageKind
from wsdaemon.workers.worker import Heartbeat, SupervisorLink, merge_listeners

OLD_TLS = TLSConfig("/old/cert.pem", "/old/key.pem")
NEW_TLS = TLSConfig("/new/cert.pem", "/new/key.pem")


def test_a_worker_serves_the_main_process_listeners_with_the_files_current_tls():
    """A worker started later serves the sockets the main process opened, with certificates as now configured."""
    started = (ListenerConfig("tcp:8443", OLD_TLS), ListenerConfig("tcp:8080"))
    fresh = (ListenerConfig("tcp:8443", NEW_TLS), ListenerConfig("tcp:9999"))
    assert merge_listeners(started, fresh) == (ListenerConfig("tcp:8443", NEW_TLS), ListenerConfig("tcp:8080"))


def test_a_listener_whose_tls_was_switched_keeps_what_its_socket_started_with():
    """TLS switched on or off in the file needs a restart: the worker keeps the main process's setting."""
    started = (ListenerConfig("tcp:8443", OLD_TLS), ListenerConfig("tcp:8080"))
    fresh = (ListenerConfig("tcp:8443"), ListenerConfig("tcp:8080", NEW_TLS))
    assert merge_listeners(started, fresh) == started


def link_on_transport() -> tuple[SupervisorLink, StringTransport, MemoryReactorClock]:
    reactor = MemoryReactorClock()
    link = SupervisorLink(reactor)
    transport = StringTransport()
    link.makeConnection(transport)
    return link, transport, reactor


def test_the_workers_notifier_speaks_to_the_supervisor():
    """sd_notify words of the worker's lifecycle go over the channel as NOTIFY messages."""
    link, transport, _ = link_on_transport()
    Notifier("supervisor", send=link.send_notify).ready("3 connections")
    link.heartbeat()
    assert MessageDecoder().feed(transport.value()) == [
        (MessageKind.NOTIFY, b"READY=1\nSTATUS=3 connections"),
        (MessageKind.NOTIFY, b"WATCHDOG=1"),
    ]


def test_losing_the_supervisor_stops_the_worker():
    """When the main process's end of the channel closes, the worker drains and exits (reactor.stop)."""
    link, _, reactor = link_on_transport()
    reactor.running = True
    link.connectionLost(None)
    assert reactor.hasStopped


def test_the_channel_closing_during_shutdown_is_not_news():
    """At the worker's own shutdown the channel closes too; that stops nothing twice."""
    link, _, reactor = link_on_transport()
    for callable_, args, kwargs in reactor.triggers["before"]["shutdown"]:
        callable_(*args, **kwargs)
    link.connectionLost(None)
    assert not reactor.hasStopped


def test_garbage_from_the_supervisor_stops_the_worker():
    """Bytes that are not channel messages end the worker rather than being guessed at."""
    link, _, reactor = link_on_transport()
    link.dataReceived(b"\x00\x00\x00\x01?")
    assert reactor.hasStopped


def test_heartbeat_beats_from_a_reactor_timer_and_keeps_beating_while_draining():
    """The heartbeat is sent at once and every interval, and does not stop when the service stops."""
    reactor = MemoryReactorClock()
    beats: list[float] = []
    heartbeat = Heartbeat(reactor, lambda: beats.append(reactor.seconds()), 2.0)
    heartbeat.startService()
    reactor.advance(2)
    heartbeat.stopService()
    reactor.advance(2)
    assert beats == [0.0, 2.0, 4.0]
