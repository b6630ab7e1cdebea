"""Handler discovery: the one place that calls ``twisted.plugin.getPlugins``.

Handlers are plugins in any installed package's ``twisted/plugins/`` folder, so
a third-party distribution adds a handler just by being installed. Built-in
handlers are found the same way (``twisted/plugins/wsdaemon_handlers.py``).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from twisted.plugin import IPlugin, getPlugins
from zope.interface import implementer

from wsdaemon.interfaces import HandlerOptionsError, IHandlerPlugin, WebSocketServerFactory


@implementer(IPlugin, IHandlerPlugin)
class HandlerPlugin:
    """An import-cheap plugin descriptor naming the module that implements the handler.

    The module is imported only when an endpoint uses the handler (the
    ``ServiceMaker`` trick), and must define
    ``build_factory(options, endpoint) -> WebSocketServerFactory``.
    """

    def __init__(self, name: str, module: str, description: str, options: Mapping[str, str] | None = None) -> None:
        self.name = name
        self.module = module
        self.description = description
        self.options = MappingProxyType(dict(options or {}))

    def buildFactory(self, options: Mapping[str, Any], endpoint: str) -> WebSocketServerFactory[Any]:
        """Import the implementation and let it validate ``options``.

        Raises:
            HandlerOptionsError: an option is unknown or invalid.
        """
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            raise HandlerOptionsError(unknown[0], f"one of: {', '.join(sorted(self.options)) or '(no options)'}", options[unknown[0]])
        implementation = importlib.import_module(self.module)
        return implementation.build_factory(options, endpoint)  # type: ignore[no-any-return]

    def __repr__(self) -> str:
        return f"<handler plugin {self.name!r} from {self.module}>"


class DuplicateHandler(Exception):
    """Two installed plugins claim the same handler name."""


def discover_handlers() -> dict[str, Any]:
    """Every installed handler plugin by name.

    Raises:
        DuplicateHandler: two plugins share a name (which one wins would be luck).
    """
    import twisted.plugins

    found: dict[str, Any] = {}
    for plugin in getPlugins(IHandlerPlugin, twisted.plugins):
        if plugin.name in found:
            raise DuplicateHandler(f"handler name {plugin.name!r} is provided twice: {found[plugin.name]!r} and {plugin!r}")
        found[plugin.name] = plugin
    return found


def describe_handlers(handlers: Mapping[str, Any]) -> str:
    """The ``--list-handlers`` text: each handler, its description and options."""
    lines = []
    for name in sorted(handlers):
        plugin = handlers[name]
        lines.append(f"{name}: {plugin.description}")
        for option, help_text in sorted(plugin.options.items()):
            lines.append(f"    {option}: {help_text}")
        if not plugin.options:
            lines.append("    (no options)")
    return "\n".join(lines)
