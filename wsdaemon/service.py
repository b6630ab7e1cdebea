"""Service assembly: the single-process daemon, built from a config by :func:`build_service`.

Everything is checked before anything listens: unknown handlers, bad handler
options, unparsable endpoint strings and certificates are reported together as
one :class:`ConfigError`. The daemon is a :class:`DaemonService`: one listening
service per listener, all serving one factory that reads the running
:class:`~wsdaemon.runtime.Runtime`, and a shutdown whose steps run in a stated
order rather than in the order its children happen to be in.

A worker process runs the same function: it passes its inherited, already-open
sockets as ``endpoints`` (``AdoptedStreamServerEndpoint``) instead of letting
each listener's endpoint string be parsed.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from twisted.application.service import IService, MultiService, Service
from twisted.internet.defer import Deferred, DeferredList, maybeDeferred, succeed
from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import IListeningPort, IProtocolFactory, IStreamServerEndpoint
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.resource import Resource

from wsdaemon.adapter.switching import SwitchingFactory
from wsdaemon.admission import Admission
from wsdaemon.broker import IBroker
from wsdaemon.config import Config, ConfigError, Problem
from wsdaemon.core.errors import SHUTDOWN
from wsdaemon.handler_factories import resolve_factories as resolve_factories  # re-exported: its old home
from wsdaemon.heap import leave_alone
from wsdaemon.interfaces import HandlerContext
from wsdaemon.lifecycle import LifecycleService
from wsdaemon.memory_release import MemoryReleaseService
from wsdaemon.plugins import discover_authenticators
from wsdaemon.pubsub import build_api_access, build_broker
from wsdaemon.reload import Reloader
from wsdaemon.runtime import Authenticators, Factories, RuntimeBuilder, RuntimeSlot
from wsdaemon.stats import DaemonStats, Snapshot
from wsdaemon.systemd import Notifier
from wsdaemon.tls import TLSServerFactory, build_listener_tls
from wsdaemon.web.metrics import Gather, MetricsResource, local_gather, metrics_site, parse_networks
from wsdaemon.web.site import build_listening_factory, build_root

#: Where one listener listens: its config endpoint string (which names it, and its TLS) and the endpoint.
Listen = tuple[str, IStreamServerEndpoint]


def _exit_after_shutdown() -> None:
    """Exit 1 once the reactor has stopped, so systemd and scripts see the failure."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(1)


class ListenerService(Service):
    """Listens on one endpoint; if it cannot, the daemon stops with status 1."""

    log = Logger()

    def __init__(
        self, description: str, endpoint: IStreamServerEndpoint, factory: IProtocolFactory, reactor: Any
    ) -> None:
        self.description = description
        self.endpoint = endpoint
        self.factory = factory
        self.reactor = reactor
        self.port: IListeningPort | None = None
        self.listening: Deferred[None] | None = None  # fires (with None) once listen succeeded or failed

    def startService(self) -> None:
        """Start listening; a failure is logged with the endpoint and stops the daemon."""
        super().startService()  # type: ignore[no-untyped-call]  # super(): mypy#16653
        self.listening = self.endpoint.listen(self.factory).addCallbacks(self._listening, self._listen_failed)

    def stopService(self) -> Any:
        """Stop accepting new connections."""
        super().stopService()  # type: ignore[no-untyped-call]  # super(): mypy#16653
        if self.port is not None:
            port, self.port = self.port, None
            return port.stopListening()
        return None

    def _listening(self, port: IListeningPort) -> None:
        self.port = port
        self.log.info("listening on {description} ({address})", description=self.description, address=port.getHost())

    def _listen_failed(self, failure: Failure) -> None:
        self.log.critical(
            "cannot listen on {description}: {error}", description=self.description, error=failure.getErrorMessage()
        )
        self.reactor.addSystemEventTrigger("after", "shutdown", _exit_after_shutdown)
        self.reactor.callWhenRunning(self.reactor.stop)


class BrokerService(Service):
    """Starts the daemon's broker with it, and stops it with the handlers' services.

    It lives in ``HandlerContext.services``, which the daemon stops after the drain: members
    have left their channels by then (their presence removed), and only then does the
    broker say goodbye (its own presence entries removed) and close its connections.
    """

    def __init__(self, broker: IBroker) -> None:
        self.broker = broker

    def startService(self) -> None:
        """Connect (Redis, the workers' relay) or nothing (in-process)."""
        super().startService()  # type: ignore[no-untyped-call]  # super(): mypy#16653
        self.broker.start()

    def stopService(self) -> Deferred[None]:
        """Stop the broker; the daemon waits for the returned Deferred."""
        super().stopService()  # type: ignore[no-untyped-call]  # super(): mypy#16653
        return self.broker.stop()


def endpoint_problem(
    key: str, endpoint: str, error: Exception, example: str = "tcp:8080:interface=127.0.0.1"
) -> Problem:
    """The config problem at ``key`` for an endpoint string that ``serverFromString`` refused."""
    expected = f"a Twisted server endpoint string such as {example} ({error})"
    return Problem(key, expected, repr(endpoint))


def parse_listeners(config: Config, reactor: Any, problems: list[Problem]) -> list[Listen]:
    """Parse each listener's Twisted endpoint string, recording the ones that do not parse."""
    endpoints: list[Listen] = []
    for index, listener in enumerate(config.listeners):
        try:
            endpoints.append((listener.endpoint, serverFromString(reactor, listener.endpoint)))
        except Exception as error:  # noqa: BLE001 - serverFromString raises ValueError, KeyError, TypeError...
            problems.append(endpoint_problem(f"listeners[{index}].endpoint", listener.endpoint, error))
    return endpoints


def _run_step(_: object, step: Callable[[], object]) -> object:
    """One shutdown step (its Deferred, if it returns one, holds back the next)."""
    return step()


class DaemonService(MultiService):
    """One daemon process: handler services, listeners and lifecycle, stopped in a stated order.

    They start in this order: the handlers' own services, the listeners, then the
    lifecycle (READY=1 once every listener listens). Shutdown runs these steps, each
    once the one before has finished:

    1. the lifecycle says STOPPING=1 and stops its timers;
    2. the listeners stop accepting connections;
    3. the drain: every WebSocket is closed with 1001 (HTTP connections at once) and
       waited for, up to the running ``drain_timeout_seconds``; the rest are dropped;
    4. the handlers' services (the ``process`` handler ends its programs), now that
       the connections they served are gone, and any other child.

    A step that fails is logged, and the next one runs.

    Attributes:
        runtime: the running Runtime's slot (what a reload swaps).
        factory: the listening factory every listener serves.
        listeners: one service per listener.
        lifecycle: signals, sd_notify, reload and watchdog.
        handler_services: ``HandlerContext.services``, where handlers add their own services.
    """

    log = Logger()

    def __init__(
        self,
        runtime: RuntimeSlot,
        factory: SwitchingFactory,
        listeners: Sequence[ListenerService],
        lifecycle: LifecycleService,
        handler_services: MultiService,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # super(): mypy#16653
        self.runtime = runtime
        self.factory = factory
        self.listeners = list(listeners)
        self.lifecycle = lifecycle
        self.handler_services = handler_services
        for child in (handler_services, *self.listeners, lifecycle):  # the start order
            self.addService(child)

    def stopService(self) -> Deferred[None]:
        """Run the shutdown steps in order; the reactor waits for the returned Deferred."""
        Service.stopService(self)
        known = {id(child) for child in (self.handler_services, *self.listeners, self.lifecycle)}
        others = [child for child in self if id(child) not in known]
        steps: list[Callable[[], object]] = [
            self.lifecycle.stopService,
            lambda: self._stop_together(self.listeners),
            self.drain,
            lambda: self._stop_together([self.handler_services, *others]),
        ]
        done: Deferred[object] = succeed(None)
        for step in steps:
            done.addCallback(_run_step, step)
            done.addErrback(self._step_failed)
        return done.addCallback(lambda _: None)

    def drain(self) -> Deferred[None]:
        """Close every connection (WebSockets with 1001), waiting up to the running drain timeout."""
        seconds = self.runtime.current.limits.drain_timeout_seconds
        return self.factory.drain(SHUTDOWN, seconds)

    def _stop_together(self, services: Sequence[IService]) -> Deferred[None]:
        """Stop ``services`` at once; fires when all have stopped (failures are logged)."""
        stopping = [maybeDeferred(service.stopService) for service in services]
        return DeferredList(stopping, consumeErrors=True).addCallback(self._log_failures)

    def _log_failures(self, results: list[tuple[bool, Any]]) -> None:
        for succeeded, result in results:
            if not succeeded:
                self.log.failure("a service failed to stop", result)

    def _step_failed(self, failure: Failure) -> None:
        self.log.failure("a shutdown step failed; going on with the next one", failure)


def build_service(
    config: Config,
    handlers: Mapping[str, Any],
    reactor: Any,
    *,
    endpoints: Sequence[Listen] | None = None,
    load_config: Callable[[], Config] | None = None,
    notifier: Notifier | None = None,
    authenticators: Mapping[str, Any] | None = None,
    broker: IBroker | None = None,
    share_metrics: Callable[[Callable[[], Snapshot]], Gather] | None = None,
    settle_heap: Callable[[], None] = leave_alone,
) -> DaemonService:
    """The single-process daemon for ``config``: what ``twist wsdaemon`` runs, and what each worker runs.

    Args:
        config: the configuration to serve.
        handlers: the installed handler plugins by name.
        reactor: the reactor everything is scheduled on (handlers get it through their
            :class:`HandlerContext`).
        endpoints: where each listener listens, as (config endpoint string, endpoint)
            pairs; by default each of ``config``'s listener strings is parsed. A worker
            passes its inherited sockets here.
        load_config: re-reads the config on SIGHUP (None: no file to re-read).
        notifier: sd_notify (default: none).
        authenticators: the installed authenticator plugins by name (default: those
            ``discover_authenticators`` finds).
        broker: where channels live (default: the one ``[broker]`` names, or in-process);
            a worker without ``[broker]`` passes its relay to the main process.
        share_metrics: a worker's link to the main process for ``/metrics``: given this
            process's snapshot function, it returns the gather of every worker's (default:
            this process alone). A worker never opens ``[metrics] listen``; the main process does.
        settle_heap: run when the daemon is ready and after each reload
            (``twist wsdaemon`` passes :func:`wsdaemon.heap.settle`; default: nothing).

    Raises:
        ConfigError: any handler, authenticator, option, key file, listener or certificate
            problem, all reported at once.
    """
    plugins = discover_authenticators() if authenticators is None else authenticators
    problems: list[Problem] = []
    handler_services = MultiService()
    if broker is None:
        broker = build_broker(config, reactor, problems)
    BrokerService(broker).setServiceParent(handler_services)
    context = HandlerContext(reactor, handler_services, broker)
    admission = Admission()  # the clients and their counts: one for the daemon's life, across reloads
    listeners: list[ListenerService] = []
    api = build_api_access(config, listeners, problems)  # [api] and its token: read at start only
    stats = DaemonStats()  # the endpoints' counters: one for the daemon's life, across reloads
    served_broker = broker

    def snapshot() -> Snapshot:
        return stats.snapshot(slot.current.factories, served_broker.state.value)

    gather = local_gather(snapshot) if share_metrics is None else share_metrics(snapshot)
    metrics = MetricsResource(gather, parse_networks(config.metrics.allowed_networks))  # [metrics]: read at start only
    on_listeners = config.metrics.enabled and config.metrics.listen is None

    def root(new: Config, factories: Factories, guards: Authenticators) -> Resource:
        return build_root(
            new,
            factories,
            reactor,
            admission=admission,
            authenticators=guards,
            broker=broker,
            api=api,
            stats=stats,
            metrics=metrics if on_listeners else None,
        )

    builder = RuntimeBuilder(handlers, context, root, plugins)
    runtime = builder.build(config, problems)
    listen = parse_listeners(config, reactor, problems) if endpoints is None else list(endpoints)
    tls = build_listener_tls(config, problems)
    own_metrics = None
    if config.metrics.enabled and config.metrics.listen is not None and share_metrics is None:
        own_metrics = metrics_listener(config.metrics.listen, metrics, reactor, problems)
    if problems or runtime is None:
        raise ConfigError(config.source or "(built-in defaults and --listen)", problems)
    slot = RuntimeSlot(runtime)
    factory = build_listening_factory(slot, reactor, admission)
    for description, endpoint in listen:
        served = TLSServerFactory(tls[description], factory, reactor) if description in tls else factory
        listeners.append(ListenerService(description, endpoint, served, reactor))
    reloader = Reloader(slot, builder, tls, load_config=load_config)
    lifecycle = LifecycleService(reactor, factory, listeners, reloader, notifier=notifier, settle_heap=settle_heap)
    daemon = DaemonService(slot, factory, listeners, lifecycle, handler_services)
    MemoryReleaseService(
        admission, lambda: slot.current.config.release_after_closed_connections, reactor
    ).setServiceParent(daemon)  # type: ignore[no-untyped-call]
    if own_metrics is not None:
        own_metrics.setServiceParent(daemon)  # type: ignore[no-untyped-call]
    return daemon


def metrics_endpoint(description: str, reactor: Any, problems: list[Problem]) -> IStreamServerEndpoint | None:
    """The endpoint of ``[metrics] listen``; a string Twisted cannot parse is a problem at ``metrics.listen``."""
    try:
        endpoint: IStreamServerEndpoint = serverFromString(reactor, description)
    except Exception as error:  # noqa: BLE001 - serverFromString raises ValueError, KeyError, TypeError...
        problems.append(endpoint_problem("metrics.listen", description, error, "tcp:9100:interface=127.0.0.1"))
        return None
    return endpoint


def metrics_listener(
    description: str, metrics: MetricsResource, reactor: Any, problems: list[Problem]
) -> ListenerService | None:
    """The listener of ``[metrics] listen``: ``/metrics`` alone, on its own endpoint."""
    endpoint = metrics_endpoint(description, reactor, problems)
    if endpoint is None:
        return None
    return ListenerService(f"metrics {description}", endpoint, metrics_site(metrics, reactor), reactor)
