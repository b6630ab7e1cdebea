"""Plugin discovery: the one place that calls ``twisted.plugin.getPlugins``.

Handlers and authenticators are plugins in any installed package's
``wsdaemon_plugins/`` folder, so a third-party distribution adds one just by
being installed. The built-ins are found the same way
(``wsdaemon_plugins/wsdaemon_handlers.py``, ``wsdaemon_plugins/wsdaemon_authenticators.py``).

``wsdaemon_plugins`` is wsdaemon's own plugin package rather than ``twisted.plugins``
because ``twist`` and ``twistd`` import every module in ``twisted/plugins/`` themselves
(to find their subcommands), before wsdaemon runs, and print Twisted's tracebacks for one
that fails to import; only wsdaemon imports ``wsdaemon_plugins/``, so a broken module
there is reported in one line. Plugins in ``twisted/plugins/`` (the old location) are
still found, each with a line recommending the move.
"""

from __future__ import annotations

import importlib
import inspect
import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from twisted.logger import ILogObserver, Logger, LogLevel, globalLogPublisher
from twisted.plugin import IPlugin, getPlugins
from twisted.python import log as legacy_log
from twisted.python.failure import Failure
from zope.interface import implementer, provider

from wsdaemon.interfaces import (
    HandlerContext,
    HandlerOptionsError,
    IAuthenticator,
    IAuthenticatorPlugin,
    IHandlerPlugin,
    InvalidHandlerOptions,
    WebSocketServerFactory,
)


def takes_context(function: Callable[..., Any]) -> bool:
    """Whether ``function`` can be called as ``(options, endpoint, context)``.

    Handlers written before :class:`HandlerContext` existed take ``(options, endpoint)``
    only; they keep working, called without it. A callable whose signature cannot be
    read is assumed to take the context (it is the current API).
    """
    try:
        inspect.signature(function).bind(None, None, None)
    except TypeError:
        return False
    except ValueError:  # no signature to read (some builtins)
        return True
    return True


def build_handler_factory(
    plugin: Any, options: Mapping[str, Any], endpoint: str, context: HandlerContext
) -> WebSocketServerFactory[Any]:
    """``plugin.buildFactory`` for one endpoint, with ``context`` if the plugin takes it.

    Raises:
        HandlerOptionsError: the plugin refused an option.
    """
    build = plugin.buildFactory
    if takes_context(build):
        return build(options, endpoint, context)  # type: ignore[no-any-return]
    return build(options, endpoint)  # type: ignore[no-any-return]


@implementer(IPlugin, IHandlerPlugin)
class HandlerPlugin:
    """An import-cheap plugin descriptor naming the module that implements the handler.

    The module is imported only when an endpoint uses the handler (the
    ``ServiceMaker`` trick), and must define
    ``build_factory(options, endpoint, context) -> WebSocketServerFactory``, or
    ``build_factory(options, endpoint)`` if it needs nothing from the daemon.
    """

    def __init__(self, name: str, module: str, description: str, options: Mapping[str, str] | None = None) -> None:
        self.name = name
        self.module = module
        self.description = description
        self.options = MappingProxyType(dict(options or {}))

    def buildFactory(
        self, options: Mapping[str, Any], endpoint: str, context: HandlerContext | None = None
    ) -> WebSocketServerFactory[Any]:
        """Import the implementation and let it validate ``options``.

        The daemon always passes ``context``; it is passed on to a ``build_factory`` that
        takes it. Without one (a test building a handler that needs nothing from the
        daemon), ``build_factory`` is called with ``(options, endpoint)``.

        Raises:
            HandlerOptionsError: an option is unknown or invalid (``InvalidHandlerOptions``: several).
        """
        declared = sorted(self.options)
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            from wsdaemon.config.checks import did_you_mean  # not at import: plugin modules import this one

            expected = f"one of: {', '.join(declared) or '(no options)'}"
            raise InvalidHandlerOptions(
                [HandlerOptionsError(name, expected + did_you_mean(name, declared), options[name]) for name in unknown]
            )
        build = importlib.import_module(self.module).build_factory
        if context is not None and takes_context(build):
            return build(options, endpoint, context)  # type: ignore[no-any-return]
        return build(options, endpoint)  # type: ignore[no-any-return]

    def __repr__(self) -> str:
        return f"<handler plugin {self.name!r} from {self.module}>"


@implementer(IPlugin, IAuthenticatorPlugin)
class AuthenticatorPlugin:
    """An import-cheap authenticator descriptor naming the module that implements it.

    The module is imported only when an endpoint uses it, and must define
    ``build_authenticator(options, endpoint, context) -> IAuthenticator``.
    """

    def __init__(self, name: str, module: str, description: str, options: Mapping[str, str] | None = None) -> None:
        self.name = name
        self.module = module
        self.description = description
        self.options = MappingProxyType(dict(options or {}))

    def buildAuthenticator(self, options: Mapping[str, Any], endpoint: str, context: HandlerContext) -> IAuthenticator:
        """Import the implementation and let it validate ``options`` and read its files.

        Raises:
            HandlerOptionsError: an option is unknown or invalid (``InvalidHandlerOptions``: several),
                or a file it names is unusable.
        """
        declared = sorted(self.options)
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            from wsdaemon.config.checks import did_you_mean  # not at import: plugin modules import this one

            expected = f"one of: {', '.join(declared) or '(no options)'}"
            raise InvalidHandlerOptions(
                [HandlerOptionsError(name, expected + did_you_mean(name, declared), options[name]) for name in unknown]
            )
        implementation = importlib.import_module(self.module)
        return implementation.build_authenticator(options, endpoint, context)  # type: ignore[no-any-return]

    def __repr__(self) -> str:
        return f"<authenticator plugin {self.name!r} from {self.module}>"


class DuplicatePlugin(Exception):
    """Two installed plugins claim the same name."""


class DuplicateHandler(DuplicatePlugin):
    """Two installed plugins claim the same handler name."""


class DuplicateAuthenticator(DuplicatePlugin):
    """Two installed plugins claim the same authenticator name."""


@dataclass(frozen=True)
class BrokenPlugin:
    """A module in a ``wsdaemon_plugins/`` or ``twisted/plugins/`` folder that failed to import: its plugins are missing."""

    module: str
    path: str
    error: str

    def __str__(self) -> str:
        return f"plugin module {self.module} ({self.path}) failed to import, so its handlers are missing: {self.error}"


@dataclass(frozen=True)
class OldLocationPlugin:
    """A plugin found in ``twisted/plugins/``, where wsdaemon looked before ``wsdaemon_plugins/``: it works, but should move."""

    kind: str
    name: str
    plugin: str  # its repr, which names its implementation module

    def __str__(self) -> str:
        return (
            f"{self.kind} plugin {self.name!r} ({self.plugin}) is in twisted/plugins/, the old location: it still "
            "works, but move its module to wsdaemon_plugins/ (twist and twistd import every module in "
            "twisted/plugins/ themselves and print Twisted's tracebacks for one that fails to import; "
            "see docs/handlers.md)"
        )


_log = Logger(namespace="wsdaemon.plugins")
#: The broken modules already logged by this process: every scan (handlers, authenticators,
#: each reload) meets them again, and each is worth one line, not one per scan.
_reported: set[BrokenPlugin] = set()
#: The plugins found in the old location already logged by this process (each scan meets them again).
_moved_reported: set[OldLocationPlugin] = set()
#: The plugin folders (``<sys.path entry>/<folder>/``) wsdaemon reads, and the package each is.
PLUGIN_FOLDERS = {"wsdaemon_plugins": "wsdaemon_plugins", os.path.join("twisted", "plugins"): "twisted.plugins"}


def discover_handlers(
    broken: list[BrokenPlugin] | None = None, moved: list[OldLocationPlugin] | None = None
) -> dict[str, Any]:
    """Every installed handler plugin by name, from ``wsdaemon_plugins`` and ``twisted.plugins``.

    A plugin module that fails to import is skipped: one error line naming the
    module and the error is logged here, once per process (DESIGN §4), and the module added to
    ``broken``; twisted.plugin's own traceback of it is logged at debug level only. A plugin
    found in ``twisted.plugins`` (the old location) is used, logged at info level once per
    process, and added to ``moved``.

    Raises:
        DuplicateHandler: two plugins share a name (which one wins would be luck).
    """
    return _discover(IHandlerPlugin, "handler", DuplicateHandler, broken, moved)


def discover_authenticators(
    broken: list[BrokenPlugin] | None = None, moved: list[OldLocationPlugin] | None = None
) -> dict[str, Any]:
    """Every installed authenticator plugin by name (``none``, ``jwt``, ``basic`` and any others).

    ``broken`` and ``moved`` as for :func:`discover_handlers`.

    Raises:
        DuplicateAuthenticator: two plugins share a name.
    """
    return _discover(IAuthenticatorPlugin, "authenticator", DuplicateAuthenticator, broken, moved)


def _discover(
    interface: Any,
    kind: str,
    duplicate: type[DuplicatePlugin],
    broken: list[BrokenPlugin] | None,
    moved: list[OldLocationPlugin] | None,
) -> dict[str, Any]:
    """The providers of ``interface`` by name, in both plugin packages; broken modules logged, duplicates raised."""
    import twisted.plugins
    import wsdaemon_plugins

    found: dict[str, Any] = {}
    for package in (wsdaemon_plugins, twisted.plugins):
        failures: list[Failure] = []
        with _failures_logged(failures):
            plugins = legacy_log.callWithContext({"log_level": LogLevel.debug}, _scan, interface, package)
        for failure in failures:
            module = broken_plugin(failure)
            if module not in _reported:
                _reported.add(module)
                _log.error("{module}", module=module)
            if broken is not None:
                broken.append(module)
        for plugin in plugins:
            if plugin.name in found:
                raise duplicate(f"{kind} name {plugin.name!r} is provided twice: {found[plugin.name]!r} and {plugin!r}")
            found[plugin.name] = plugin
            if package is twisted.plugins:
                notice = OldLocationPlugin(kind, plugin.name, repr(plugin))
                if notice not in _moved_reported:
                    _moved_reported.add(notice)
                    _log.info("{notice}", notice=notice)
                if moved is not None:
                    moved.append(notice)
    return found


def _scan(interface: Any, package: Any) -> list[Any]:
    """The providers of ``interface`` in ``package``, read to the end (``getPlugins`` is lazy).

    twisted.plugin reports a module that fails to import with ``log.err``: a
    critical traceback, which goes to stderr even before logging starts. The
    caller runs this in a legacy log context that makes it a debug event instead.
    """
    return list(getPlugins(interface, package))


@contextmanager
def _failures_logged(failures: list[Failure]) -> Iterator[None]:
    """Collect the failures logged (by twisted.plugin) inside the block."""

    @provider(ILogObserver)
    def observe(event: Mapping[str, Any]) -> None:
        failure = event.get("log_failure") or event.get("failure")
        if isinstance(failure, Failure) and all(failure is not seen for seen in failures):
            failures.append(failure)

    globalLogPublisher.addObserver(observe)
    try:
        yield
    finally:
        globalLogPublisher.removeObserver(observe)


def is_plugin_import_report(event: Mapping[str, Any]) -> bool:
    """Whether ``event`` is twisted.plugin's traceback of a plugin module that failed to import, above debug level.

    ``twist`` and ``twistd`` scan the plugins themselves (for reactors and
    subcommands) before wsdaemon is imported, and each scan logs the same
    traceback at critical level; wsdaemon's log formatters leave those out, since
    :func:`discover_handlers` logs one line naming the module instead. The debug-level
    copy from wsdaemon's own scan is kept, for ``--log-level debug``.
    """
    failure = event.get("log_failure") or event.get("failure")  # log.err events carry "failure"
    if not isinstance(failure, Failure) or not failure.frames or event.get("log_level") == LogLevel.debug:
        return False
    function, path = failure.frames[0][:2]  # where it was caught
    scanning = function == "getCache" and path.endswith(os.path.join("twisted", "plugin.py"))
    return scanning and broken_plugin(failure).path != "(unknown)"


def broken_plugin(failure: Failure) -> BrokenPlugin:
    """The plugin module a failed import comes from, found in its traceback (or its SyntaxError)."""
    error = f"{type(failure.value).__name__}: {failure.getErrorMessage()}"
    paths = [frame[1] for frame in reversed(failure.frames)]
    if isinstance(failure.value, SyntaxError) and failure.value.filename:
        paths.insert(0, failure.value.filename)
    for path in paths:
        folder = os.path.dirname(path)
        for ending, package in PLUGIN_FOLDERS.items():
            if folder == ending or folder.endswith(os.sep + ending):
                name = os.path.splitext(os.path.basename(path))[0]
                return BrokenPlugin(f"{package}.{name}", path, error)
    return BrokenPlugin("(unknown)", "(unknown)", error)


def describe_handlers(handlers: Mapping[str, Any]) -> str:
    """The ``--list-handlers`` text (or ``--list-authenticators``): each plugin, its description and options."""
    lines = []
    for name in sorted(handlers):
        plugin = handlers[name]
        lines.append(f"{name}: {plugin.description}")
        for option, help_text in sorted(plugin.options.items()):
            lines.append(f"    {option}: {help_text}")
        if not plugin.options:
            lines.append("    (no options)")
    return "\n".join(lines)
