"""``twist wsdaemon`` options and service construction: the edge of the daemon.

This is the only module that touches the global reactor, once, at call time
(DESIGN §3, rule 8). Configuration problems are printed as one clear message
and the process exits 1 before anything listens: no traceback, nothing
half-started.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from typing import Any, NoReturn

from twisted.application.service import IService
from twisted.python import usage

from wsdaemon import __version__
from wsdaemon.config import Config, ConfigError, load_config, worker_count
from wsdaemon.console import write_report
from wsdaemon.logs import LOG_FORMATS, ObserverFactory, observer_factory
from wsdaemon.plugins import (
    BrokenPlugin,
    DuplicatePlugin,
    OldLocationPlugin,
    describe_handlers,
    discover_authenticators,
    discover_handlers,
)
from wsdaemon.runners import for_runner, hand_log_format


class Options(usage.Options):
    """Command-line options of ``twist wsdaemon``."""

    synopsis = "[--config PATH] [--listen ENDPOINT ...] [--log-format text|json] [--check-config] [--list-handlers] [--list-authenticators]"
    longdesc = (
        "Serves WebSocket endpoints and plain HTTP (demo page, /healthz) on the same port. "
        "Without --config it runs on built-in defaults: the demo page at / and an echo endpoint at /echo "
        "on tcp:8080:interface=127.0.0.1."
    )
    optParameters = [
        ["config", "c", None, "TOML configuration file (see etc/wsdaemon.toml)."],
        ["log-format", None, None, "Log lines as human-readable text (default) or json (one object per line)."],
        [
            "worker",
            None,
            None,
            "Internal: run as worker N of a main process with [process] workers > 1 (the main process adds it).",
            int,
        ],
    ]
    optFlags = [
        [
            "check-config",
            None,
            (
                "Check the config, certificates and handler options, print the effective listeners, "
                "endpoints and limits, and exit 0 (usable) or 1, without listening."
            ),
        ],
    ]

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # super(): mypy#16653
        self["listen"] = []
        #: The observer factory of the chosen --log-format (set once the options are parsed).
        self.log_observer: ObserverFactory = observer_factory("text")

    def opt_listen(self, endpoint: str) -> None:
        """Listen on a Twisted endpoint string (repeatable; replaces the config's listeners)."""
        self["listen"].append(endpoint)

    opt_l = opt_listen

    def postOptions(self) -> None:
        """Choose the log format, and hand it to the runner (``twist`` or ``twistd``) the same way for both.

        Text is the default under both, even when stdout is not a terminal (``twist``
        alone would pick JSON there). How the format reaches each runner, and which
        part of that is public Twisted API, is said in :mod:`wsdaemon.runners`.

        Raises:
            usage.UsageError: an unknown format, or one twistd's own log options override.
        """
        chosen = self["log-format"]
        if chosen is not None and chosen not in LOG_FORMATS:
            raise usage.UsageError(f"--log-format must be one of {', '.join(LOG_FORMATS)}, got {chosen!r}")
        self.log_observer = observer_factory(chosen or "text", self["worker"])
        hand_log_format(self, chosen, self.log_observer)

    def opt_list_handlers(self) -> NoReturn:
        """List the installed handler plugins with their options, and exit."""
        _list_plugins(discover_handlers)

    def opt_list_authenticators(self) -> NoReturn:
        """List the installed authenticator plugins ([endpoints.auth] type) with their options, and exit."""
        _list_plugins(discover_authenticators)

    def opt_version(self) -> NoReturn:
        """Print the wsdaemon version and exit."""
        print(f"wsdaemon {__version__}")
        raise SystemExit(0)


def _list_plugins(
    discover: Callable[[list[BrokenPlugin], list[OldLocationPlugin]], Mapping[str, Any]],
) -> NoReturn:
    """Print the plugins ``discover`` finds (broken modules and old locations on stderr), and exit."""
    broken: list[BrokenPlugin] = []
    moved: list[OldLocationPlugin] = []
    try:
        write_report(describe_handlers(discover(broken, moved)), sys.stdout)  # `--list-handlers | head` is no error
    except DuplicatePlugin as error:
        print(f"wsdaemon: {error}", file=sys.stderr)
        raise SystemExit(1) from None
    _print_notices([*broken, *moved])
    raise SystemExit(0)


def _print_notices(notices: list[BrokenPlugin | OldLocationPlugin]) -> None:
    """One stderr line per broken plugin module or plugin in the old location (each scan meets it again: once each)."""
    for notice in dict.fromkeys(notices):
        print(f"wsdaemon: {notice}", file=sys.stderr)


def fail(message: str) -> NoReturn:
    """Print a startup error for a person and exit 1 (no traceback)."""
    print(f"wsdaemon: {message}", file=sys.stderr)
    raise SystemExit(1)


def makeService(options: Options) -> IService:
    """Load the config, resolve handlers and authenticators, and build the daemon service."""
    from twisted.internet import reactor

    def reload_config() -> Config:
        return load_config(options["config"], options["listen"])

    try:
        if options["check-config"]:
            from wsdaemon.check import check_config

            broken: list[BrokenPlugin] = []  # logging has not started: say it on stderr
            moved: list[OldLocationPlugin] = []
            handlers, authenticators = discover_handlers(broken, moved), discover_authenticators(broken, moved)
            _print_notices([*broken, *moved])
            raise SystemExit(
                check_config(
                    options["config"],
                    options["listen"],
                    handlers,
                    reactor,
                    sys.stdout,
                    sys.stderr,
                    None,
                    authenticators,
                )
            )
        return for_runner(_build(options, reload_config(), reload_config, reactor), options, options.log_observer)
    except ConfigError as error:
        fail(str(error))
    except DuplicatePlugin as error:
        fail(str(error))


def _build(options: Options, config: Config, reload_config: Callable[[], Config], reactor: Any) -> IService:
    """One process (``workers = 1``), the main process of several workers, or one of those workers."""
    from wsdaemon import heap
    from wsdaemon.systemd import Notifier

    if options["worker"] is not None:
        from wsdaemon.workers.channel import ChannelError
        from wsdaemon.workers.worker import build_worker

        try:
            return build_worker(
                config,
                discover_handlers(),
                reactor,
                options["worker"],
                load_config=reload_config,
                settle_heap=heap.settle,
            )
        except ChannelError as error:
            fail(f"--worker is set by the main process for its workers, not by hand ({error})")
    count = worker_count(config.process)
    if count > 1:
        from wsdaemon.workers.start import build_supervisor

        if options.parent is not None and "nodaemon" in options.parent:  # twistd's options: it daemonizes
            fail("[process] workers > 1 runs under `twist wsdaemon` (in the foreground), not twistd")
        return build_supervisor(config, discover_handlers(), reactor, count, notifier=Notifier.from_environment())
    from wsdaemon.service import build_service

    return build_service(
        config,
        discover_handlers(),
        reactor,
        load_config=reload_config,
        notifier=Notifier.from_environment(),
        authenticators=discover_authenticators(),
        settle_heap=heap.settle,
    )
