"""Service assembly: listeners, shared factory, and configuration problems found before listening (wsdaemon.service)."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest
from twisted.application.service import IServiceCollection, Service
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, fail
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.logger import capturedLogs
from twisted.python.failure import Failure

from tests.adapter.recording import RecordingFactory
from tests.test_systemd import Recorder
from wsdaemon.adapter.switching import SwitchingFactory
from wsdaemon.config import ConfigError, default_config, parse_config
from wsdaemon.interfaces import HandlerContext
from wsdaemon.plugins import discover_handlers
from wsdaemon.service import ListenerService, build_service
from wsdaemon.systemd import Notifier

TWO_LISTENERS = """
[[listeners]]
endpoint = "tcp:8080:interface=127.0.0.1"

[[listeners]]
endpoint = "tcp:9090:interface=0.0.0.0"
"""


@pytest.fixture(scope="module")
def handlers():
    """The installed handler plugins (echo at least)."""
    return discover_handlers()


def build(text: str | None, handlers, reactor=None):
    config = default_config() if text is None else parse_config(text, "test.toml")
    reactor = reactor or MemoryReactorClock()
    return build_service(config, handlers, reactor), reactor


def listeners(service) -> list[ListenerService]:
    """The service's listener children, in order (other children, e.g. for shutdown, are skipped)."""
    return [child for child in service if isinstance(child, ListenerService)]


def problems_of(error: ConfigError) -> dict[str, str]:
    return {problem.key: f"expected {problem.expected}, got {problem.got}" for problem in error.problems}


# --- a good configuration --------------------------------------------------------------------


def test_one_listener_service_per_configured_listener(handlers):
    """build_service returns a service collection with one ListenerService per [[listeners]] entry."""
    service, _ = build(TWO_LISTENERS, handlers)
    assert IServiceCollection.providedBy(service)
    children = listeners(service)
    assert len(children) == 2
    assert [child.description for child in children] == ["tcp:8080:interface=127.0.0.1", "tcp:9090:interface=0.0.0.0"]


def test_nothing_listens_before_start(handlers):
    """Building the service does not listen; only startService does."""
    _, reactor = build(TWO_LISTENERS, handlers)
    assert reactor.tcpServers == []


def test_start_service_listens_on_the_configured_port_and_interface(handlers):
    """startService listens on each listener's port and interface, with the switching HTTP+WebSocket factory."""
    service, reactor = build(TWO_LISTENERS, handlers)
    service.startService()
    assert [(port, interface) for port, _, _, interface in reactor.tcpServers] == [
        (8080, "127.0.0.1"),
        (9090, "0.0.0.0"),
    ]
    factories = [factory for _, factory, _, _ in reactor.tcpServers]
    assert all(isinstance(factory, SwitchingFactory) for factory in factories)


def test_all_listeners_share_one_factory(handlers):
    """Every listener serves the same factory, so connection limits and endpoints are shared."""
    service, reactor = build(TWO_LISTENERS, handlers)
    service.startService()
    first, second = (factory for _, factory, _, _ in reactor.tcpServers)
    assert first is second


def test_default_config_listens_on_localhost_8080(handlers):
    """The built-in defaults listen on 127.0.0.1:8080 only."""
    service, reactor = build(None, handlers)
    service.startService()
    assert [(port, interface) for port, _, _, interface in reactor.tcpServers] == [(8080, "127.0.0.1")]


def test_listen_override_replaces_the_listeners(handlers):
    """--listen values replace the file's listeners."""
    config = parse_config(TWO_LISTENERS, "test.toml", listen_override=["tcp:7000:interface=127.0.0.1"])
    reactor = MemoryReactorClock()
    build_service(config, handlers, reactor).startService()
    assert [(port, interface) for port, _, _, interface in reactor.tcpServers] == [(7000, "127.0.0.1")]


def test_listener_remembers_its_port_and_stop_service_stops_listening(handlers):
    """A started listener keeps its listening port; stopService stops listening and forgets it."""
    service, _ = build(None, handlers)
    service.startService()
    (listener,) = listeners(service)
    assert listener.port is not None
    assert listener.port.getHost().port == 8080
    service.stopService()
    assert listener.port is None
    assert not listener.running


class FailingEndpoint:
    """An endpoint whose listen fails, like a port already in use."""

    def listen(self, factory):
        return fail(OSError("Address already in use"))


def test_listen_failure_stops_the_reactor_and_arranges_exit_status_1():
    """A listener that cannot listen schedules a reactor stop and an exit hook after shutdown."""
    reactor = MemoryReactorClock()
    listener = ListenerService("tcp:80", FailingEndpoint(), factory=object(), reactor=reactor)
    listener.startService()
    assert reactor.whenRunningHooks and reactor.whenRunningHooks[0][0] == reactor.stop
    assert reactor.triggers["after"]["shutdown"]
    assert listener.port is None


# --- configuration problems ---------------------------------------------------------------------


def test_unknown_handler_is_a_config_error(handlers):
    """An endpoint naming a handler that is not installed is reported at endpoints[N].handler, listing the installed ones."""
    text = '[[endpoints]]\npath = "/x"\nhandler = "nope"\n'
    with pytest.raises(ConfigError) as raised:
        build(text, handlers)
    found = problems_of(raised.value)
    assert list(found) == ["endpoints[0].handler"]
    assert "echo" in found["endpoints[0].handler"] and "'nope'" in found["endpoints[0].handler"]
    assert raised.value.source == "test.toml"


def test_bad_handler_option_is_a_config_error(handlers):
    """An option the handler does not accept is reported at endpoints[N].options.NAME."""
    text = '[[endpoints]]\npath = "/x"\nhandler = "echo"\n[endpoints.options]\nloud = true\n'
    with pytest.raises(ConfigError) as raised:
        build(text, handlers)
    assert list(problems_of(raised.value)) == ["endpoints[0].options.loud"]


def test_unparsable_listener_endpoint_is_a_config_error(handlers):
    """A listener string Twisted cannot parse is reported at listeners[N].endpoint, with the bad value."""
    text = '[[listeners]]\nendpoint = "carrier-pigeon:8080"\n'
    with pytest.raises(ConfigError) as raised:
        build(text, handlers)
    found = problems_of(raised.value)
    assert list(found) == ["listeners[0].endpoint"]
    assert "carrier-pigeon:8080" in found["listeners[0].endpoint"]


def test_all_problems_are_reported_together_and_nothing_listens(handlers):
    """Every handler, option and listener problem comes in one ConfigError, and no port is opened."""
    text = """
[[listeners]]
endpoint = "tcp:8080:interface=127.0.0.1"
[[listeners]]
endpoint = "tcp:not-a-port"

[[endpoints]]
path = "/a"
handler = "nope"

[[endpoints]]
path = "/b"
handler = "echo"
[endpoints.options]
loud = true
"""
    reactor = MemoryReactorClock()
    with pytest.raises(ConfigError) as raised:
        build(text, handlers, reactor)
    assert sorted(problems_of(raised.value)) == [
        "endpoints[0].handler",
        "endpoints[1].options.loud",
        "listeners[1].endpoint",
    ]
    assert reactor.tcpServers == []
    report = str(raised.value)
    assert report.startswith("invalid configuration in test.toml:")
    assert "listeners[1].endpoint" in report and "endpoints[0].handler" in report


def test_every_unknown_option_of_an_endpoint_is_reported(handlers):
    """Two unknown options on one endpoint are both reported, not just the first."""
    text = '[[endpoints]]\npath = "/x"\nhandler = "echo"\n[endpoints.options]\nloud = true\nfast = 1\n'
    with pytest.raises(ConfigError) as raised:
        build(text, handlers)
    assert sorted(problems_of(raised.value)) == ["endpoints[0].options.fast", "endpoints[0].options.loud"]


def test_problems_in_the_defaults_name_the_command_line(handlers):
    """Without a config file, a bad --listen is reported against the defaults and --listen."""
    config = parse_config("", "ignored.toml")
    config = type(config)(None, (type(config.listeners[0])("bogus:::"),), config.limits, config.endpoints, True)
    with pytest.raises(ConfigError) as raised:
        build_service(config, handlers, MemoryReactorClock())
    assert "--listen" in raised.value.source


def test_every_bad_option_of_every_endpoint_is_reported_at_once(handlers):
    """Bad values, a missing required option and typos on several endpoints all come in one ConfigError."""
    text = """
[[endpoints]]
path = "/chat"
handler = "broadcast"
[endpoints.options]
queue_max_messages = 0
overflow = "drop-newest"
qeue_max_bytes = 2048

[[endpoints]]
path = "/relay"
handler = "tcp"
[endpoints.options]
host = ""
connect_timeout_seconds = true
"""
    with pytest.raises(ConfigError) as raised:
        build(text, handlers)
    found = problems_of(raised.value)
    assert sorted(found) == [
        "endpoints[0].options.overflow",
        "endpoints[0].options.qeue_max_bytes",
        "endpoints[0].options.queue_max_messages",
        "endpoints[1].options.connect_timeout_seconds",
        "endpoints[1].options.host",
        "endpoints[1].options.port",
    ]
    assert found["endpoints[0].options.qeue_max_bytes"].endswith(
        "got an unknown option (did you mean queue_max_bytes?)"
    )
    assert found["endpoints[1].options.port"].endswith("got 'missing'")


def test_an_unknown_handler_gets_a_suggestion(handlers):
    """handler = "brodcast" is reported with "did you mean broadcast?"."""
    with pytest.raises(ConfigError) as raised:
        build('[[endpoints]]\npath = "/x"\nhandler = "brodcast"\n', handlers)
    assert problems_of(raised.value)["endpoints[0].handler"].endswith("got 'brodcast' (did you mean broadcast?)")


def test_resolve_factories_keeps_its_old_import_path():
    """resolve_factories moved to wsdaemon.handler_factories; wsdaemon.service still offers it."""
    from wsdaemon import handler_factories, service

    assert service.resolve_factories is handler_factories.resolve_factories


# --- the handler context ---------------------------------------------------------------------------


class RecordingService(Service):
    """A handler's own service: records when it stops."""

    def __init__(self, events: list[str]) -> None:
        self.events = events

    def stopService(self) -> None:
        super().stopService()
        self.events.append("handler service stopped")


class ContextPlugin:
    """A handler plugin of today's API: it keeps the context and joins the service tree at build time."""

    options: ClassVar[dict[str, str]] = {}

    def __init__(self, events: list[str]) -> None:
        self.events = events
        self.contexts: list[HandlerContext] = []

    def buildFactory(self, options: Any, endpoint: str, context: HandlerContext) -> RecordingFactory:
        self.contexts.append(context)
        RecordingService(self.events).setServiceParent(context.services)
        return RecordingFactory()


class OldPlugin:
    """A handler plugin written before the context existed: buildFactory(options, endpoint)."""

    options: ClassVar[dict[str, str]] = {}

    def buildFactory(self, options: Any, endpoint: str) -> RecordingFactory:
        return RecordingFactory()


ENDPOINTS = '[[endpoints]]\npath = "/new"\nhandler = "new"\n[[endpoints]]\npath = "/old"\nhandler = "old"\n'


def test_handlers_get_the_daemons_reactor_and_services_and_old_plugins_still_work():
    """A plugin taking a context gets the daemon's reactor and service tree; a two-argument plugin is still served."""
    plugin = ContextPlugin([])
    reactor = MemoryReactorClock()
    service = build_service(parse_config(ENDPOINTS, "test.toml"), {"new": plugin, "old": OldPlugin()}, reactor)
    (context,) = plugin.contexts
    assert context.reactor is reactor and context.services is service.handler_services
    assert set(service.runtime.current.factories) == {"/new", "/old"}


# --- stopping, in order ------------------------------------------------------------------------------


class HeldPort:
    """A listening port whose stopListening is recorded and finishes only when the test says so."""

    def __init__(self, events: list[str]) -> None:
        self.events = events
        self.stopped: Deferred[None] = Deferred()

    def stopListening(self) -> Deferred[None]:
        self.events.append("stopped listening")
        return self.stopped


def test_shutdown_steps_run_in_order_each_after_the_one_before():
    """STOPPING=1 first, then the listeners stop, then the drain, and the handlers' services once drained."""
    events: list[str] = []
    sent = Recorder()
    reactor = MemoryReactorClock()
    service = build_service(
        parse_config(ENDPOINTS, "test.toml"),
        {"new": ContextPlugin(events), "old": OldPlugin()},
        reactor,
        notifier=Notifier("@test", sent),
    )
    service.startService()
    port = HeldPort(events)
    service.listeners[0].port = port
    peer = service.factory.buildProtocol(IPv4Address("TCP", "192.0.2.1", 5000))
    transport = StringTransport(peerAddress=IPv4Address("TCP", "192.0.2.1", 5000))
    peer.makeConnection(transport)
    stopped = service.stopService()
    assert [lines[0] for lines, _ in sent.sent][-1] == "STOPPING=1"
    assert events == ["stopped listening"]
    assert not transport.disconnecting  # the drain waits for the listeners
    port.stopped.callback(None)
    assert transport.disconnecting  # drained: an HTTP connection is closed at once
    assert events == ["stopped listening"]  # the handlers' services wait for the drain
    peer.connectionLost(Failure(ConnectionDone()))
    assert events == ["stopped listening", "handler service stopped"]
    assert stopped.called


def test_a_failing_shutdown_step_is_logged_and_the_next_ones_still_run():
    """A listener that fails to stop is logged; the drain and the handlers' services still stop."""
    events: list[str] = []
    service = build_service(
        parse_config(ENDPOINTS, "test.toml"), {"new": ContextPlugin(events), "old": OldPlugin()}, MemoryReactorClock()
    )
    service.startService()
    port = HeldPort(events)
    service.listeners[0].port = port
    with capturedLogs() as logged:
        stopped = service.stopService()
        port.stopped.errback(RuntimeError("cannot close the socket"))
    assert events == ["stopped listening", "handler service stopped"]
    assert stopped.called
    assert any(event.get("log_failure") is not None for event in logged)


# --- listeners given as endpoints ------------------------------------------------------------------


def test_listeners_can_be_given_as_endpoints_instead_of_strings(handlers):
    """build_service(endpoints=...) listens on the given endpoints (a worker's inherited sockets) by their config string."""
    reactor = MemoryReactorClock()
    config = parse_config(TWO_LISTENERS, "test.toml")
    given = [
        (listener.endpoint, TCP4ServerEndpoint(reactor, 7000 + index))
        for index, listener in enumerate(config.listeners)
    ]
    service = build_service(config, handlers, reactor, endpoints=given)
    service.startService()
    assert [port for port, _, _, _ in reactor.tcpServers] == [7000, 7001]
    assert [listener.description for listener in listeners(service)] == [
        listener.endpoint for listener in config.listeners
    ]
