"""``twist wsdaemon`` options and service construction: the edge of the daemon.

This is the only module that touches the global reactor, once, at call time
(DESIGN §3, rule 8). Configuration problems are printed as one clear message
and the process exits 1 before anything listens: no traceback, nothing
half-started.
"""

from __future__ import annotations

import sys
from typing import NoReturn

from twisted.application.service import IService
from twisted.python import usage

from wsdaemon import __version__
from wsdaemon.config import ConfigError, load_config
from wsdaemon.plugins import DuplicateHandler, describe_handlers, discover_handlers


class Options(usage.Options):
    """Command-line options of ``twist wsdaemon``."""

    synopsis = "[--config PATH] [--listen ENDPOINT ...] [--list-handlers]"
    longdesc = (
        "Serves WebSocket endpoints and plain HTTP (demo page, /healthz) on the same port. "
        "Without --config it runs on built-in defaults: the demo page at / and an echo endpoint at /echo "
        "on tcp:8080:interface=127.0.0.1."
    )
    optParameters = [
        ["config", "c", None, "TOML configuration file (see etc/wsdaemon.toml)."],
    ]

    def __init__(self) -> None:
        super().__init__()
        self["listen"] = []

    def opt_listen(self, endpoint: str) -> None:
        """Listen on a Twisted endpoint string (repeatable; replaces the config's listeners)."""
        self["listen"].append(endpoint)

    opt_l = opt_listen

    def opt_list_handlers(self) -> NoReturn:
        """List the installed handler plugins with their options, and exit."""
        try:
            print(describe_handlers(discover_handlers()))
        except DuplicateHandler as error:
            print(f"wsdaemon: {error}", file=sys.stderr)
            raise SystemExit(1) from None
        raise SystemExit(0)

    def opt_version(self) -> NoReturn:
        """Print the wsdaemon version and exit."""
        print(f"wsdaemon {__version__}")
        raise SystemExit(0)


def fail(message: str) -> NoReturn:
    """Print a startup error for a person and exit 1 (no traceback)."""
    print(f"wsdaemon: {message}", file=sys.stderr)
    raise SystemExit(1)


def makeService(options: Options) -> IService:
    """Load the config, resolve handlers, and build the daemon service."""
    from twisted.internet import reactor

    from wsdaemon.service import build_service

    try:
        config = load_config(options["config"], options["listen"])
        return build_service(config, discover_handlers(), reactor)
    except ConfigError as error:
        fail(str(error))
    except DuplicateHandler as error:
        fail(str(error))


