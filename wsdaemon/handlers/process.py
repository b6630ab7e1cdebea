"""The ``process`` handler: one program per connection, like websocketd.

Rules for this file:

* The program's argv comes only from the config (``command``), never from the
  client. What the client asked for reaches it as CGI-style environment
  variables (:func:`cgi_environment`), nothing else of the daemon's environment
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
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.error import ProcessDone, ProcessExitedAlready
from twisted.internet.interfaces import IDelayedCall, IPushProducer
from twisted.internet.protocol import ProcessProtocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.server import Request
from zope.interface import implementer

from wsdaemon import __version__
from wsdaemon.admission import client_address
from wsdaemon.handlers.options import OptionReader
from wsdaemon.interfaces import ConnectionRejected, WebSocketTransport

MODES = ("text", "binary")
#: stderr is logged line by line; a longer run without a newline is logged in pieces of this size.
STDERR_LINE_BYTES = 4096
#: How long a client refused for the process cap is told to wait before retrying.
RETRY_AFTER_SECONDS = 5


@dataclass(frozen=True)
class ProcessSettings:
    """An endpoint's validated ``process`` options (see ``--list-handlers``)."""

    command: tuple[str, ...]
    executable: str
    mode: str = "text"
    max_processes: int = 64
    kill_timeout_seconds: float = 5.0
    max_line_bytes: int = 1024 * 1024
    working_directory: str | None = None
    environment: Mapping[str, str] = field(default_factory=dict)


def find_executable(program: str) -> str | None:
    """``program`` as an executable path: a path is taken as is, a bare name is looked up on PATH."""
    if os.sep in program:
        return program if os.path.isfile(program) and os.access(program, os.X_OK) else None
    return shutil.which(program)


def read_settings(options: Mapping[str, Any]) -> ProcessSettings:
    """Validate the options; the program must exist now, not at the first connection.

    Raises:
        HandlerOptionsError: an option is missing, has the wrong type or names no program.
    """
    read = OptionReader(options, collect=True)
    command = read.strings(
        "command", expected='the program and its arguments, such as ["/usr/bin/cat"] (a non-empty list of strings)'
    )
    executable = find_executable(command[0]) if command else None
    if command and executable is None:
        expected = "a list whose first item is an executable program (a path, or a name found on PATH)"
        read.report("command", expected, command[0])
    directory = options.get("working_directory")
    if directory is not None and (
        not isinstance(directory, str) or not os.path.isabs(directory) or not os.path.isdir(directory)
    ):
        read.report("working_directory", "the absolute path of an existing directory", directory)
    defaults = ProcessSettings((), "")
    settings = ProcessSettings(
        command=command,
        executable=executable or "",
        mode=read.choice("mode", defaults.mode, MODES),
        max_processes=read.integer("max_processes", defaults.max_processes, 1, 100_000),
        kill_timeout_seconds=read.number("kill_timeout_seconds", defaults.kill_timeout_seconds, 0.1, 3600),
        max_line_bytes=read.integer("max_line_bytes", defaults.max_line_bytes, 1, 2**30),
        working_directory=directory,
        environment=read.string_table("environment"),
    )
    read.check()
    return settings


def _text(value: bytes | str) -> str:
    return value.decode("latin-1") if isinstance(value, bytes) else value


def cgi_environment(request: Request, endpoint: str, base: Mapping[str, str]) -> dict[str, str]:
    """The program's environment: ``base``, then the request as CGI variables (RFC 3875 §4.1).

    ``SCRIPT_NAME`` is the endpoint, ``PATH_INFO`` the rest of the URL path.
    Every request header ``Name-X`` becomes ``HTTP_NAME_X``, except ``Proxy``
    (the "httpoxy" hole: ``HTTP_PROXY`` would steer the program's HTTP clients).
    """
    env = dict(base)
    client, server = client_address(request), request.getHost()  # the admission's client, not the TCP peer
    rest = request.postpath or []
    env.update(
        GATEWAY_INTERFACE="CGI/1.1",
        SERVER_SOFTWARE=f"wsdaemon/{__version__}",
        SERVER_PROTOCOL=_text(request.clientproto),
        SERVER_NAME=_text(request.getRequestHostname()),
        SERVER_PORT=str(getattr(server, "port", "")),
        REQUEST_METHOD=_text(request.method),
        REQUEST_URI=_text(request.uri),
        SCRIPT_NAME=endpoint,
        PATH_INFO="".join("/" + _text(segment) for segment in rest) if any(rest) else "",
        QUERY_STRING=_text(request.uri.partition(b"?")[2]),
        REMOTE_ADDR=str(getattr(client, "host", "")),
        REMOTE_PORT=str(getattr(client, "port", "")),
    )
    if request.isSecure():
        env["HTTPS"] = "on"
    for name, values in request.requestHeaders.getAllRawHeaders():
        key = "HTTP_" + _text(name).upper().replace("-", "_")
        if key != "HTTP_PROXY":
            env[key] = ", ".join(_text(value) for value in values)
    return {key: value for key, value in env.items() if "\x00" not in value}


@implementer(IPushProducer)
class _Flow:
    """Pauses and resumes one side when the other is full (an ``IPushProducer`` adapter)."""

    def __init__(self, pause: Any, resume: Any) -> None:
        self.pauseProducing = pause
        self.resumeProducing = resume

    def stopProducing(self) -> None:
        """The consumer is going away; the handler cleans up on its own."""


class _Program(ProcessProtocol):
    """The process side of one connection: forwards everything to its handler."""

    def __init__(self, handler: ProcessHandler) -> None:
        self.handler = handler

    def outReceived(self, data: bytes) -> None:
        """stdout: messages for the peer."""
        self.handler.program_output(data)

    def errReceived(self, data: bytes) -> None:
        """stderr: lines for the log."""
        self.handler.program_stderr(data)

    def processEnded(self, reason: Failure) -> None:
        """The program exited and its pipes are closed."""
        self.handler.program_ended(reason)


class ProcessHandler:
    """The WebSocket side of one connection: runs the program and relays both ways."""

    log = Logger()
    transport: WebSocketTransport

    def __init__(self, factory: ProcessFactory, environment: dict[str, str], reactor: Any) -> None:
        self.factory = factory
        self.settings = factory.settings
        self.environment = environment
        self.reactor = reactor
        self.process: Any = None
        self.running = False  # the program was started and has not ended
        self.holds_slot = True  # one of the endpoint's max_processes, taken in buildProtocol
        self.closed = False  # the WebSocket is gone
        self._line = b""
        self._stderr = b""
        self._kill_call: IDelayedCall | None = None

    def negotiationStarted(self, transport: WebSocketTransport) -> None:
        """Start the program and wire backpressure both ways."""
        self.transport = transport
        subprotocol = getattr(transport, "subprotocol", None)
        if subprotocol:
            self.environment["WEBSOCKET_SUBPROTOCOL"] = subprotocol
        settings = self.settings
        try:
            self.process = self.reactor.spawnProcess(
                _Program(self),
                settings.executable,
                list(settings.command),
                env=self.environment,
                path=settings.working_directory,
            )
        except (OSError, TypeError, ValueError):  # fork/pipe failures, or an environment it cannot pass
            self.log.failure(
                "cannot start {command!r} for {endpoint}", command=settings.command, endpoint=self.factory.endpoint
            )
            self._release()
            transport.loseConnection(1011)
            return
        self.running = True
        transport.attachProducer(_Flow(self.process.pauseProducing, self.process.resumeProducing))
        pause, resume = getattr(transport, "pauseReceiving", None), getattr(transport, "resumeReceiving", None)
        if pause is not None and resume is not None:
            self.process.registerProducer(_Flow(pause, resume), True)

    def negotiationFinished(self) -> None:
        """The program speaks first, if it wants to."""

    def textMessageReceived(self, message: str) -> None:
        """The UTF-8 text on stdin, followed by a newline in text mode."""
        self._to_program(message.encode("utf-8"))

    def bytesMessageReceived(self, data: bytes) -> None:
        """The bytes on stdin, followed by a newline in text mode."""
        self._to_program(bytes(data))

    def pongReceived(self, payload: bytes) -> None:
        """Nothing for the program."""

    def connectionLost(self, reason: Failure) -> None:
        """End the program: close stdin, SIGTERM, and SIGKILL if it is still there after the timeout."""
        self.closed = True
        if not self.running:
            self._release()
            return
        self.process.resumeProducing()  # keep reading, or the pipes' end would never be seen
        self.process.closeStdin()
        self.signal_program("TERM")
        self._kill_call = self.reactor.callLater(self.settings.kill_timeout_seconds, self.signal_program, "KILL")

    def program_output(self, data: bytes) -> None:
        """stdout: each line a text message, or each chunk a binary message."""
        if self.closed:
            return
        if self.settings.mode == "binary":
            self.transport.sendBytesMessage(data)
            return
        *lines, self._line = (self._line + data).split(b"\n")
        for line in lines:
            self._send_line(line)
        if len(self._line) > self.settings.max_line_bytes:
            message = "{command!r} wrote a line over max_line_bytes; closing the connection"
            self.log.warn(message, command=self.settings.command)
            self._line = b""
            self.transport.loseConnection(1011, "program output line too long")  # type: ignore[call-arg]

    def program_stderr(self, data: bytes) -> None:
        """stderr: logged a line at a time (long runs in pieces)."""
        *lines, self._stderr = (self._stderr + data).split(b"\n")
        while len(self._stderr) > STDERR_LINE_BYTES:
            lines.append(self._stderr[:STDERR_LINE_BYTES])
            self._stderr = self._stderr[STDERR_LINE_BYTES:]
        for line in lines:
            self._log_stderr(line)

    def program_ended(self, reason: Failure) -> None:
        """Free the slot; close the connection with 1000 after success, 1011 after a failure."""
        if self._kill_call is not None and self._kill_call.active():
            self._kill_call.cancel()
        self.running = False
        self._release()
        if self._stderr:
            self._log_stderr(self._stderr)
        if self.closed:
            return
        if self._line:
            self._send_line(self._line)
        if reason.check(ProcessDone):
            self.transport.loseConnection(1000)
            return
        self.log.info(
            "{command!r} for {endpoint} ended: {why}",
            command=self.settings.command,
            endpoint=self.factory.endpoint,
            why=reason.getErrorMessage(),
        )
        self.transport.loseConnection(1011, "program failed")  # type: ignore[call-arg]

    def _release(self) -> None:
        if self.holds_slot:
            self.holds_slot = False
            self.factory.release(self)

    def _to_program(self, data: bytes) -> None:
        if self.running:
            self.process.write(data + b"\n" if self.settings.mode == "text" else data)

    def _send_line(self, line: bytes) -> None:
        if line.endswith(b"\r"):
            line = line[:-1]
        self.transport.sendTextMessage(line.decode("utf-8", "replace"))

    def _log_stderr(self, line: bytes) -> None:
        self.log.info(
            "{endpoint} {program} stderr: {line}",
            endpoint=self.factory.endpoint,
            program=self.settings.command[0],
            line=line.decode("utf-8", "replace"),
        )

    def signal_program(self, name: str) -> None:
        """Send SIG``name`` to the program, unless it is gone already."""
        try:
            self.process.signalProcess(name)
        except ProcessExitedAlready:
            pass
        except OSError as error:  # it is exiting, or is no longer ours to signal
            self.log.debug(
                "cannot send SIG{name} to {command!r}: {error}", name=name, command=self.settings.command, error=error
            )


class ProcessFactory:
    """Builds one :class:`ProcessHandler` per connection, at most ``max_processes`` at a time."""

    def __init__(self, settings: ProcessSettings, endpoint: str, base_environment: Mapping[str, str]) -> None:
        self.settings = settings
        self.endpoint = endpoint
        self.base_environment = dict(base_environment)
        self.slots = 0  # programs running or about to start
        self.handlers: set[ProcessHandler] = set()  # the connections holding those slots
        self._reactor: Any = None
        self._all_ended: Deferred[None] | None = None  # fired at shutdown once no program runs

    def buildProtocol(self, request: Request) -> ProcessHandler:
        """A handler for ``request``; ConnectionRejected (503, ``Retry-After``) at ``max_processes``."""
        if self.slots >= self.settings.max_processes:
            raise ConnectionRejected(
                503, "too many programs running; try again later", [("Retry-After", str(RETRY_AFTER_SECONDS))]
            )
        environment = cgi_environment(request, self.endpoint, self.base_environment)
        # Twisted types Site.reactor as IReactorTime; it is the reactor, which spawns and has triggers too.
        reactor: Any = request.site.reactor  # type: ignore[union-attr]  # set once the request is processed
        if self._reactor is None:
            self._reactor = reactor
            # "before": the reactor waits for it (in "during" it stops at once).
            reactor.addSystemEventTrigger("before", "shutdown", self.end_all)
        self.slots += 1
        handler = ProcessHandler(self, environment, reactor)
        self.handlers.add(handler)
        return handler

    def release(self, handler: ProcessHandler) -> None:
        """A program ended (or never started): its slot is free."""
        self.slots -= 1
        self.handlers.discard(handler)
        ended = self._all_ended
        if ended is not None and not ended.called and not any(other.running for other in self.handlers):
            ended.callback(None)

    def end_all(self) -> Deferred[None] | None:
        """At shutdown: SIGTERM every program, SIGKILL those left after ``kill_timeout_seconds``.

        The reactor waits for the returned Deferred (until all ended, or the
        SIGKILL), so no program outlives the daemon.
        """
        running = [handler for handler in self.handlers if handler.running]
        if not running:
            return None
        ended: Deferred[None] = Deferred()
        self._all_ended = ended
        for handler in running:
            handler.signal_program("TERM")

        def kill() -> None:
            for handler in running:
                if handler.running:
                    handler.signal_program("KILL")
            if not ended.called:
                ended.callback(None)

        killer = self._reactor.callLater(self.settings.kill_timeout_seconds, kill)
        return ended.addBoth(lambda result: killer.cancel() if killer.active() else None)


def build_factory(options: Mapping[str, Any], endpoint: str) -> ProcessFactory:
    """The ``process`` handler's factory for one endpoint.

    Raises:
        HandlerOptionsError: an option is missing, has the wrong type or names no program.
    """
    settings = read_settings(options)
    base = {"PATH": os.environ.get("PATH", os.defpath), **settings.environment}
    return ProcessFactory(settings, endpoint, base)
