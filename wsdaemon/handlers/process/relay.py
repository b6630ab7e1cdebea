"""The ``process`` handler's relay: a program's stdin and stdout on one side, a WebSocket on the other.

Rules for this file:

* Text mode: each line of stdout becomes a text message, each message becomes
  a line on stdin. Binary mode: stdout is sent in binary messages as it is
  read, and messages are written to stdin unchanged. stderr goes to the log.
* The program exiting closes the connection: 1000 after a zero exit status,
  1011 otherwise. The connection closing ends the program: stdin is closed,
  SIGTERM, then SIGKILL after ``kill_timeout_seconds``.
* Backpressure both ways: a peer that does not read pauses the reading of
  stdout (the program blocks on its writes); a full stdin pipe pauses the
  reading of the peer's messages.
* A text line longer than ``max_line_bytes`` closes the connection with 1011
  rather than growing a buffer without bound.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.internet.error import ProcessDone, ProcessExitedAlready
from twisted.internet.interfaces import IDelayedCall, IPushProducer
from twisted.internet.protocol import ProcessProtocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from wsdaemon.interfaces import WebSocketTransport

if TYPE_CHECKING:
    from wsdaemon.handlers.process import ProcessFactory

#: stderr is logged line by line; a longer run without a newline is logged in pieces of this size.
STDERR_LINE_BYTES = 4096


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

    # --- WebSocketProtocol -----------------------------------------------------------

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

    # --- the program's side --------------------------------------------------------------

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
            self.log.warn(
                "{command!r} wrote a line over max_line_bytes ({limit}); closing the connection",
                command=self.settings.command,
                limit=self.settings.max_line_bytes,
            )
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

    # --- internals -------------------------------------------------------------------------

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
