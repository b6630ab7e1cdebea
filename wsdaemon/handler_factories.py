"""Each endpoint's handler factory, built from its plugin and options, with every problem reported at once.

A start, a reload and ``--check-config`` all build the factories here. Like the
config file's own errors, every bad option of every endpoint is reported in one
round: an unknown option is named with the nearest known one ("did you mean"),
and the plugin still checks the options it does know, so a typo next to a bad
value gives both problems, not one after the other.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from wsdaemon.config import Config, EndpointConfig, Problem
from wsdaemon.config.checks import did_you_mean
from wsdaemon.interfaces import HandlerContext, HandlerOptionsError, WebSocketServerFactory
from wsdaemon.plugins import build_handler_factory


def resolve_factories(
    config: Config, handlers: Mapping[str, Any], context: HandlerContext, problems: list[Problem]
) -> dict[str, WebSocketServerFactory[Any]]:
    """Build each endpoint's handler factory, recording unknown handlers and bad options in ``problems``.

    Every factory gets ``context`` (the daemon's reactor and service tree) if its plugin
    takes one (:func:`wsdaemon.plugins.build_handler_factory`).
    """
    factories: dict[str, WebSocketServerFactory[Any]] = {}
    for index, endpoint in enumerate(config.endpoints):
        plugin = handlers.get(endpoint.handler)
        if plugin is None:
            known = sorted(handlers)
            expected = f"an installed handler: {', '.join(known) or '(none installed)'}"
            got = repr(endpoint.handler) + did_you_mean(endpoint.handler, known)
            problems.append(Problem(f"endpoints[{index}].handler", expected, got))
            continue
        factory = _build(index, endpoint, plugin, context, problems)
        if factory is not None:
            factories[endpoint.path] = factory
    return factories


def _build(index: int, endpoint: EndpointConfig, plugin: Any, context: HandlerContext, problems: list[Problem]) -> Any:
    """The endpoint's factory, or None after recording every unknown and every bad option.

    With unknown options the plugin still builds a factory from the known ones (so their
    values are checked in the same round), which is then dropped: a handler joins the
    service tree when first used, not when built, so a dropped factory leaves nothing behind.
    """
    prefix = f"endpoints[{index}].options"
    declared = sorted(plugin.options)
    unknown = [name for name in sorted(endpoint.options) if name not in plugin.options]
    for name in unknown:
        expected = f"an option of handler {endpoint.handler!r}: {', '.join(declared) or '(it has none)'}"
        got = "an unknown option" + did_you_mean(name, declared)
        problems.append(Problem(f"{prefix}.{name}", expected, got))
    known = {name: value for name, value in endpoint.options.items() if name in plugin.options}
    try:
        factory = build_handler_factory(plugin, known, endpoint.path, context)
    except HandlerOptionsError as error:
        problems.extend(Problem(f"{prefix}.{each.option}", each.expected, repr(each.got)) for each in error.errors)
        return None
    return None if unknown else factory
