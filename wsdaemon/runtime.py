"""The running configuration as one value, which a reload builds anew and swaps whole.

Rules for this file:

* A :class:`Runtime` is immutable: the config, each endpoint's handler factory, and
  the resource tree built from them. Nothing in it changes once it is built.
* One :class:`RuntimeSlot` holds the running Runtime. The Site, the listening
  factory and the drain read it there each time they need it (a request, a new
  connection, the shutdown), so a reload is one assignment: requests and connections
  from then on see the new Runtime, and a WebSocket already open keeps the handler and
  the limits it started with.
* What only a restart can change stays out of the swap: a reloaded Runtime keeps the
  running listeners (their sockets, and whether each speaks TLS, belong to the process).
* An endpoint whose handler and options did not change keeps its running factory
  across a reload, and with it any shared state (broadcast channels, running programs).
* Authenticators are always built afresh (a reload re-reads their key and password
  files); a file that fails refuses the whole new Runtime, so the running one, with
  its keys, stays.
* Nothing here touches a socket or the reactor: the handlers get the reactor through
  the :class:`HandlerContext` the builder holds.
"""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from twisted.logger import Logger
from twisted.web.resource import IResource

from wsdaemon.allocator import keep_freed_memory
from wsdaemon.auth.resolve import resolve_authenticators
from wsdaemon.config import Config, EndpointConfig, Problem
from wsdaemon.core import Limits
from wsdaemon.handler_factories import resolve_factories
from wsdaemon.interfaces import HandlerContext, IAuthenticator, WebSocketServerFactory
from wsdaemon.plugins import discover_authenticators

Factories = Mapping[str, WebSocketServerFactory[Any]]
Authenticators = Mapping[str, IAuthenticator]
#: Builds the resource tree of a config from its endpoints' factories and authenticators
#: (``wsdaemon.web.site.build_root``).
BuildRoot = Callable[[Config, Factories, Authenticators], IResource]

_log = Logger(namespace="wsdaemon.runtime")


@dataclass(frozen=True)
class Runtime:
    """Everything a reload replaces, as one value: the config, the handler factories, the authenticators, the tree.

    Attributes:
        config: the running configuration (after a reload: the new file, with the listeners
            the process started with).
        factories: each endpoint's handler factory, by endpoint path (read-only).
        root: the resource tree serving those endpoints, the demo page, ``/healthz`` and
            the static mounts.
        authenticators: each endpoint's authenticator, by endpoint path (read-only); built
            afresh for every Runtime, so a reload re-reads their key files.
    """

    config: Config
    factories: Factories
    root: IResource
    authenticators: Authenticators = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "factories", types.MappingProxyType(dict(self.factories)))
        object.__setattr__(self, "authenticators", types.MappingProxyType(dict(self.authenticators)))

    @property
    def limits(self) -> Limits:
        """The daemon-wide limits new connections get (``[limits]``)."""
        return self.config.limits


class RuntimeSlot:
    """Where the running :class:`Runtime` lives; whoever serves reads it here, a reload swaps it.

    A slot rather than attributes copied into each object: the Site, the listening factory,
    the drain and the lifecycle then cannot disagree about which configuration runs.
    """

    def __init__(self, runtime: Runtime) -> None:
        self._current = runtime

    @property
    def current(self) -> Runtime:
        """The Runtime serving new requests and connections now."""
        return self._current

    def swap(self, runtime: Runtime) -> Runtime:
        """Make ``runtime`` the running one; the previous one is returned (open WebSockets still use it)."""
        previous, self._current = self._current, runtime
        return previous


def apply_process_settings(config: Config) -> None:
    """What a configuration sets for the whole process: how much freed memory the allocator keeps."""
    keep_freed_memory(config.allocator_cache_bytes)


def _handler_key(endpoint: EndpointConfig) -> tuple[str, str]:
    """What decides whether an endpoint's factory can be kept: its handler and its options."""
    return (endpoint.handler, repr(sorted(endpoint.options.items())))


def reuse_unchanged(running: Runtime, config: Config, fresh: Factories) -> dict[str, WebSocketServerFactory[Any]]:
    """``fresh`` factories for ``config``, except that unchanged endpoints keep their running factory.

    An endpoint keeps its factory when it has the same path, handler and options as in
    ``running``; any other endpoint (new, or changed) gets its fresh one, which is logged.
    """
    before = {endpoint.path: _handler_key(endpoint) for endpoint in running.config.endpoints}
    factories: dict[str, WebSocketServerFactory[Any]] = {}
    for endpoint in config.endpoints:
        same = before.get(endpoint.path) == _handler_key(endpoint) and endpoint.path in running.factories
        factories[endpoint.path] = running.factories[endpoint.path] if same else fresh[endpoint.path]
        if not same:
            _log.info(
                "reload: {path} now uses handler {handler} with new options",
                path=endpoint.path,
                handler=endpoint.handler,
            )
    return factories


@dataclass(frozen=True)
class RuntimeBuilder:
    """Builds a :class:`Runtime` from a config: handler factories and authenticators through the plugins, then the tree.

    The same builder makes the first Runtime and every reloaded one, so both go through
    the same checks and the handlers get the same :class:`HandlerContext`.

    Attributes:
        handlers: the installed handler plugins by name (``wsdaemon.plugins.discover_handlers``).
        context: what each handler factory gets from the daemon.
        build_root: builds the resource tree (``wsdaemon.web.site.build_root`` on the daemon's reactor).
        authenticators: the installed authenticator plugins by name; None: those
            ``wsdaemon.plugins.discover_authenticators`` finds.
    """

    handlers: Mapping[str, Any]
    context: HandlerContext
    build_root: BuildRoot
    authenticators: Mapping[str, Any] | None = None

    def build(self, config: Config, problems: list[Problem], running: Runtime | None = None) -> Runtime | None:
        """The Runtime for ``config``, or None when a handler, an authenticator, an option or a
        key file is refused (added to ``problems``).

        With ``running`` (a reload), unchanged endpoints keep their running factories
        (:func:`reuse_unchanged`) and the Runtime keeps the running listeners; the
        authenticators are new (their files read again).
        """
        found: list[Problem] = []
        factories: Factories = resolve_factories(config, self.handlers, self.context, found)
        plugins = self.authenticators if self.authenticators is not None else discover_authenticators()
        guards = resolve_authenticators(config, plugins, self.context, found)
        if found:
            problems.extend(found)
            return None
        if running is not None:
            factories = reuse_unchanged(running, config, factories)
            config = dataclasses.replace(config, listeners=running.config.listeners)
        return Runtime(config, factories, self.build_root(config, factories, guards), guards)
