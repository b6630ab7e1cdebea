"""Building the main process of several workers: everything checked first, as a single process does.

The main process never serves, but it refuses to start on what would stop a worker: unknown
handlers or bad handler options, unknown authenticators, bad authenticator options or key
files, unparsable endpoints, unreadable certificates, an unreadable ``[api]`` token or
``[broker]`` password. The
errors are the same :class:`~wsdaemon.config.ConfigError` a single process prints, and
nothing is spawned.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from typing import Any

from twisted.application.service import IService, MultiService

from wsdaemon.auth.resolve import resolve_authenticators
from wsdaemon.config import Config, ConfigError, Problem
from wsdaemon.handler_factories import resolve_factories
from wsdaemon.interfaces import HandlerContext
from wsdaemon.plugins import discover_authenticators
from wsdaemon.pubsub import build_api_access, build_broker
from wsdaemon.service import metrics_listener
from wsdaemon.systemd import Notifier
from wsdaemon.tls import build_listener_tls
from wsdaemon.web.metrics import MetricsResource, parse_networks
from wsdaemon.workers.sockets import open_sockets
from wsdaemon.workers.supervisor import Supervisor


def worker_command(orig_argv: Sequence[str] | None = None, executable: str | None = None) -> list[str]:
    """The main process's own command line, to start each worker with (``--worker N`` is added).

    ``sys.orig_argv`` is the whole command as run (``python -m twisted …``, the ``twist``
    script, a script that installs another reactor first), so a worker runs the same
    reactor, log options and configuration; the interpreter is this one.
    """
    argv = list(sys.orig_argv if orig_argv is None else orig_argv)
    return [executable or sys.executable, *argv[1:]]


def build_supervisor(
    config: Config,
    handlers: Mapping[str, Any],
    reactor: Any,
    count: int,
    *,
    command: Sequence[str] | None = None,
    notifier: Notifier | None = None,
) -> IService:
    """The main process's service for ``count`` workers.

    Raises:
        ConfigError: any handler, authenticator, option, key file or certificate problem, all reported at once.
    """
    problems: list[Problem] = []
    # Built and dropped, as --check-config does: the workers build their own (the broker connects
    # only when its service starts, so a Redis client made here never connects). Key files are read.
    broker = build_broker(config, reactor, problems)
    context = HandlerContext(reactor, MultiService(), broker)
    resolve_factories(config, handlers, context, problems)
    resolve_authenticators(config, discover_authenticators(), context, problems)
    build_api_access(config, [], problems)
    build_listener_tls(config, problems)
    supervisor = Supervisor(
        reactor,
        config,
        count,
        worker_command() if command is None else command,
        lambda: open_sockets(reactor, config.listeners),
        notifier=notifier,
    )
    metrics = None
    if config.metrics.enabled and config.metrics.listen is not None:  # served here, with every worker's figures
        resource = MetricsResource(supervisor.figures.gather, parse_networks(config.metrics.allowed_networks))
        metrics = metrics_listener(config.metrics.listen, resource, reactor, problems)
    if problems:
        raise ConfigError(config.source or "(built-in defaults and --listen)", problems)
    if metrics is None:
        return supervisor
    both = MultiService()
    supervisor.setServiceParent(both)  # type: ignore[no-untyped-call]
    metrics.setServiceParent(both)  # type: ignore[no-untyped-call]
    return both
