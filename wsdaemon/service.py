"""Service assembly: one listening service per configured listener, all serving one site.

Everything is checked before anything listens: unknown handlers, bad handler
options and unparsable endpoint strings are reported together as one
:class:`ConfigError`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from typing import Any

from twisted.application.service import IService, MultiService, Service
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import IListeningPort, IProtocolFactory, IStreamServerEndpoint
from twisted.logger import Logger
from twisted.python.failure import Failure

from wsdaemon.adapter.switching import SwitchingFactory
from wsdaemon.auth.resolve import resolve_authenticators
from wsdaemon.config import Config, ConfigError, Problem
from wsdaemon.core import CloseCode
from wsdaemon.handler_factories import resolve_factories as resolve_factories  # re-exported: its old home
from wsdaemon.interfaces import IAuthenticator, WebSocketServerFactory
from wsdaemon.lifecycle import LifecycleService
from wsdaemon.plugins import discover_authenticators
from wsdaemon.systemd import Notifier
from wsdaemon.tls import TLSServerFactory, build_listener_tls
from wsdaemon.web.site import build_factory, build_root


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


class DrainService(Service):
    """On shutdown, closes every WebSocket with 1001 and waits for the close handshakes.

    Waiting is bounded by ``drain_timeout_seconds``; connections still open then are dropped.
    """

    def __init__(self, factory: SwitchingFactory, timeout_seconds: float) -> None:
        self.factory = factory
        self.timeout_seconds = timeout_seconds

    def stopService(self) -> Deferred[None]:
        """Start the drain; the reactor waits for the returned Deferred before it stops."""
        super().stopService()  # type: ignore[no-untyped-call]  # super(): mypy#16653
        return self.factory.drain(CloseCode.GOING_AWAY, "server shutting down", self.timeout_seconds)


def endpoint_problem(index: int, endpoint: str, error: Exception) -> Problem:
    """The config problem for a listener endpoint string that ``serverFromString`` refused."""
    expected = f"a Twisted server endpoint string such as tcp:8080:interface=127.0.0.1 ({error})"
    return Problem(f"listeners[{index}].endpoint", expected, repr(endpoint))


def parse_listeners(config: Config, reactor: Any, problems: list[Problem]) -> list[tuple[str, IStreamServerEndpoint]]:
    """Parse each listener's Twisted endpoint string, recording the ones that do not parse."""
    endpoints = []
    for index, listener in enumerate(config.listeners):
        try:
            endpoints.append((listener.endpoint, serverFromString(reactor, listener.endpoint)))
        except Exception as error:  # noqa: BLE001 - serverFromString raises ValueError, KeyError, TypeError...
            problems.append(endpoint_problem(index, listener.endpoint, error))
    return endpoints


def build_service(
    config: Config,
    handlers: Mapping[str, Any],
    reactor: Any,
    *,
    load_config: Callable[[], Config] | None = None,
    notifier: Notifier | None = None,
    authenticators: Mapping[str, Any] | None = None,
) -> IService:
    """The daemon: a MultiService of listeners sharing one HTTP+WebSocket factory.

    TLS listeners wrap that factory in their own TLS factory. The last child is the
    :class:`LifecycleService` (signals, sd_notify, reload with ``load_config``).
    ``authenticators`` are the authenticator plugins by name (default: the installed ones).

    Raises:
        ConfigError: any handler, authenticator, option, key file, listener or certificate
            problem, all reported at once.
    """
    plugins = discover_authenticators() if authenticators is None else authenticators
    problems: list[Problem] = []
    factories = resolve_factories(config, handlers, problems)
    guards = resolve_authenticators(config, plugins, reactor, problems)
    endpoints = parse_listeners(config, reactor, problems)
    tls = build_listener_tls(config, problems)
    if problems:
        raise ConfigError(config.source or "(built-in defaults and --listen)", problems)
    factory = build_factory(config, factories, reactor, authenticators=guards)
    root = MultiService()
    drain = DrainService(factory, config.limits.drain_timeout_seconds)
    drain.setServiceParent(root)
    listeners = []
    for description, endpoint in endpoints:
        served = TLSServerFactory(tls[description], factory, reactor) if description in tls else factory
        listeners.append(ListenerService(description, endpoint, served, reactor))
        listeners[-1].setServiceParent(root)
    fresh_guards: dict[str, IAuthenticator] = {}

    def resolve(new: Config, found: list[Problem]) -> dict[str, WebSocketServerFactory[Any]]:
        """On SIGHUP: the handler factories, and the authenticators (key files re-read) for build_root."""
        built = resolve_factories(new, handlers, found)
        fresh_guards.clear()
        fresh_guards.update(resolve_authenticators(new, plugins, reactor, found))
        return built

    LifecycleService(
        reactor,
        config,
        factory,
        factories,
        tls,
        listeners,
        drain,
        notifier=notifier,
        load_config=load_config,
        resolve=resolve,
        build_root=lambda new, built: build_root(
            new, built, reactor, admission=factory.admission, authenticators=dict(fresh_guards)
        ),
    ).setServiceParent(root)
    return root
