"""Each endpoint's authenticator, built from its plugin and options, with every problem reported at once.

A start, a reload (SIGHUP) and ``--check-config`` all build the authenticators here, so key
and password files are read each time: a problem stops the start, or refuses the reload (the
running authenticators stay). As for handler options, an unknown key is named with the nearest
known one, and the plugin still checks the keys it does know.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from wsdaemon.auth.errors import KeyFileError
from wsdaemon.config import Config, EndpointConfig, Problem
from wsdaemon.config.checks import did_you_mean
from wsdaemon.interfaces import HandlerContext, HandlerOptionsError, IAuthenticator


def resolve_authenticators(
    config: Config, plugins: Mapping[str, Any], context: HandlerContext, problems: list[Problem]
) -> dict[str, IAuthenticator]:
    """Build each endpoint's authenticator by path, recording unknown types and bad options in ``problems``.

    ``context`` is the daemon's :class:`~wsdaemon.interfaces.HandlerContext`, lent to
    authenticator plugins as to handlers (the reactor, and a place for their services).
    """
    built: dict[str, IAuthenticator] = {}
    for index, endpoint in enumerate(config.endpoints):
        kind = endpoint.auth.type
        plugin = plugins.get(kind)
        if plugin is None:
            known = sorted(plugins)
            expected = f"an installed authenticator: {', '.join(known) or '(none installed)'}"
            problems.append(Problem(f"endpoints[{index}].auth.type", expected, repr(kind) + did_you_mean(kind, known)))
            continue
        authenticator = _build(index, endpoint, plugin, context, problems)
        if authenticator is not None:
            built[endpoint.path] = authenticator
    return built


def _build(
    index: int, endpoint: EndpointConfig, plugin: Any, context: HandlerContext, problems: list[Problem]
) -> IAuthenticator | None:
    """The endpoint's authenticator, or None after recording every unknown and every bad option."""
    prefix, options = f"endpoints[{index}].auth", endpoint.auth.options
    declared = sorted(plugin.options)
    unknown = [name for name in sorted(options) if name not in plugin.options]
    for name in unknown:
        expected = f"an option of authenticator {endpoint.auth.type!r}: {', '.join(declared) or '(it has none)'}"
        problems.append(Problem(f"{prefix}.{name}", expected, "an unknown option" + did_you_mean(name, declared)))
    known = {name: value for name, value in options.items() if name in plugin.options}
    try:
        authenticator: IAuthenticator = plugin.buildAuthenticator(known, endpoint.path, context)
    except HandlerOptionsError as error:
        problems.extend(Problem(f"{prefix}.{each.option}", each.expected, _got(each)) for each in error.errors)
        return None
    return None if unknown else authenticator


def _got(error: HandlerOptionsError) -> str:
    """What was found, in words: a key file's problem already is (the file and what is wrong with it)."""
    return str(error.got) if isinstance(error, KeyFileError) else repr(error.got)
