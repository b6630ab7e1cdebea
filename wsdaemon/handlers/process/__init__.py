"""The ``process`` handler: one program per connection, like websocketd.

Rules for this package:

* The program's argv comes only from the config (``command``), never from the
  client. What the client asked for reaches it as CGI-style environment
  variables (:mod:`.environment`), nothing else of the daemon's environment
  but ``PATH`` and the configured ``environment`` table.
* Text mode: each line of stdout becomes a text message, each message becomes
  a line on stdin. Binary mode: stdout is sent in binary messages as it is
  read, and messages are written to stdin unchanged. stderr goes to the log.
* The program exiting closes the connection: 1000 after a zero exit status,
  1011 otherwise. The connection closing ends the program: SIGTERM, then
  SIGKILL after ``kill_timeout_seconds``; so does stopping the daemon.
* Backpressure both ways: a peer that does not read pauses the reading of
  stdout (the program blocks on its writes); a full stdin pipe pauses the
  reading of the peer's messages.
* At most ``max_processes`` programs run per endpoint; an upgrade over that
  gets 503 with ``Retry-After`` before the 101.

One module per job: :mod:`.settings` (the options), :mod:`.environment` (the
CGI variables), :mod:`.relay` (the program's pipes and the WebSocket),
:mod:`.shutdown` (no program outlives the daemon). This module holds the
endpoint's factory, which counts the programs and builds the relay for each
connection.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from twisted.application.service import IServiceCollection
from twisted.web.server import Request

from wsdaemon.handlers.process.environment import cgi_environment, peer_address
from wsdaemon.handlers.process.relay import ProcessHandler
from wsdaemon.handlers.process.settings import MODES, ProcessSettings, find_executable, read_settings
from wsdaemon.handlers.process.shutdown import EndPrograms
from wsdaemon.interfaces import ConnectionRejected, HandlerContext

__all__ = [
    "MODES",
    "RETRY_AFTER_SECONDS",
    "EndPrograms",
    "ProcessFactory",
    "ProcessHandler",
    "ProcessSettings",
    "build_factory",
    "cgi_environment",
    "find_executable",
    "peer_address",
    "read_settings",
]

#: How long a client refused for the process cap is told to wait before retrying.
RETRY_AFTER_SECONDS = 5


class ProcessFactory:
    """Builds one :class:`ProcessHandler` per connection, at most ``max_processes`` at a time.

    Args:
        settings: the endpoint's validated options.
        endpoint: the endpoint's path (``SCRIPT_NAME``, and the logs).
        base_environment: what every program gets besides the CGI variables.
        context: the daemon's reactor (to spawn and to time) and its service tree (to
            join the shutdown).
    """

    def __init__(
        self, settings: ProcessSettings, endpoint: str, base_environment: Mapping[str, str], context: HandlerContext
    ) -> None:
        self.settings = settings
        self.endpoint = endpoint
        self.base_environment = dict(base_environment)
        self.reactor: Any = context.reactor
        self.slots = 0  # programs running or about to start
        self.handlers: set[ProcessHandler] = set()  # the connections holding those slots
        self.shutdown: EndPrograms | None = None  # joins the daemon's services with the first program
        self._services: IServiceCollection = context.services

    def buildProtocol(self, request: Request) -> ProcessHandler:
        """A handler for ``request``, or 503 when the endpoint runs ``max_processes`` already.

        Raises:
            ConnectionRejected: 503 with ``Retry-After`` at the cap.
        """
        if self.slots >= self.settings.max_processes:
            raise ConnectionRejected(
                503, "too many programs running; try again later", [("Retry-After", str(RETRY_AFTER_SECONDS))]
            )
        environment = cgi_environment(request, self.endpoint, self.base_environment)
        if self.shutdown is None:
            # Only a factory that runs programs has any to end: one built and then replaced
            # by a reload before its first connection never joins the service tree.
            self.shutdown = EndPrograms(self.handlers, self.settings.kill_timeout_seconds, self.reactor)
            self.shutdown.setServiceParent(self._services)
        self.slots += 1
        handler = ProcessHandler(self, environment, self.reactor)
        self.handlers.add(handler)
        return handler

    def release(self, handler: ProcessHandler) -> None:
        """A program ended (or never started): its slot is free."""
        self.slots -= 1
        self.handlers.discard(handler)
        if self.shutdown is not None:
            self.shutdown.program_ended()


def build_factory(options: Mapping[str, Any], endpoint: str, context: HandlerContext) -> ProcessFactory:
    """The ``process`` handler's factory for one endpoint.

    Args:
        options: the endpoint's ``[endpoints.options]`` table.
        endpoint: the endpoint's path.
        context: the daemon's reactor and service tree.

    Raises:
        HandlerOptionsError: an option is missing, has the wrong type or names no program.
    """
    settings = read_settings(options)
    base = {"PATH": os.environ.get("PATH", os.defpath), **settings.environment}
    return ProcessFactory(settings, endpoint, base, context)
