"""The daemon's broker and publish API, built from ``[broker]`` and ``[api]`` (see :mod:`wsdaemon.broker`).

A start and ``--check-config`` build them here: secrets are read from their files (never the
command line), and a file that cannot be read is a config problem naming its key.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from twisted.internet.address import UNIXAddress

from wsdaemon.broker import IBroker, InProcessBroker
from wsdaemon.config import Config, Problem
from wsdaemon.web.api import ApiAccess, read_token


def build_broker(config: Config, reactor: Any, problems: list[Problem]) -> IBroker:
    """The in-process broker, or with ``[broker]`` the Redis one (txredisapi is imported only then)."""
    settings = config.broker
    if settings is None:
        return InProcessBroker(reactor)
    from wsdaemon.broker.redis import read_password, redis_broker

    password = None
    try:
        password = read_password(settings)
    except OSError as error:
        problems.append(Problem("broker.password_file", "a readable file", error.strerror or str(error)))
    if settings.tls_ca_file is not None and not os.access(settings.tls_ca_file, os.R_OK):
        problems.append(Problem("broker.tls_ca_file", "a readable PEM file", repr(settings.tls_ca_file)))
    return redis_broker(reactor, settings, password)


def build_api_access(config: Config, listeners: Sequence[Any], problems: list[Problem]) -> ApiAccess | None:
    """The API's token and listener check (``listeners`` is filled once the listeners exist)."""
    api = config.api
    if api is None:
        return None
    try:
        token = read_token(api.token_file)
    except OSError as error:
        problems.append(Problem("api.token_file", "a readable file", error.strerror or str(error)))
        return None
    except ValueError as error:
        problems.append(Problem("api.token_file", str(error).partition(", got ")[0], str(error).partition(", got ")[2]))
        return None
    served = set(api.listeners)

    def on_allowed_listener(request: Any) -> bool:
        if not served:
            return True
        host = request.getHost()
        return any(
            same_socket(host, listener.port.getHost())
            for listener in listeners
            if listener.description in served and listener.port is not None
        )

    return ApiAccess(token, config.limits.max_message_bytes, on_allowed_listener)


def same_socket(connection: Any, listening: Any) -> bool:
    """Whether a connection's local address belongs to a listening socket (port or unix path)."""
    if isinstance(connection, UNIXAddress) or isinstance(listening, UNIXAddress):
        return (
            isinstance(connection, UNIXAddress)
            and isinstance(listening, UNIXAddress)
            and connection.name == listening.name
        )
    port, host = getattr(listening, "port", None), getattr(listening, "host", None)
    if port is None or getattr(connection, "port", None) != port:
        return False
    return host in ("0.0.0.0", "::", "") or getattr(connection, "host", None) == host
