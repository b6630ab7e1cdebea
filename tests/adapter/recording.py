"""Test doubles for the handler side of the adapter: a handler and a factory that record.

They are written against the handler API only (``wsdaemon.interfaces``), the
way a user's handler would be, so tests see exactly what a handler sees.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.interfaces import IPushProducer
from twisted.python.failure import Failure
from zope.interface import implementer

from wsdaemon.interfaces import WebSocketTransport


class HandlerBug(Exception):
    """What a buggy handler raises; its text must never reach the wire."""


SECRET = "secret-db-password-hunter2"


class RecordingHandler:
    """Records every call the adapter makes; optionally echoes, or raises in one method.

    Args:
        echo: send each received message straight back.
        raise_in: the name of a handler method that raises :class:`HandlerBug`.
    """

    def __init__(self, *, echo: bool = False, raise_in: str | None = None) -> None:
        self.echo = echo
        self.raise_in = raise_in
        self.transport: WebSocketTransport | None = None
        self.events: list[tuple[str, Any]] = []
        self.lost: Failure | None = None

    def _record(self, name: str, value: Any = None) -> None:
        self.events.append((name, value))
        if name == self.raise_in:
            raise HandlerBug(SECRET)

    def negotiationStarted(self, transport: WebSocketTransport) -> None:
        """Keep the transport."""
        self.transport = transport
        self._record("negotiationStarted", transport)

    def negotiationFinished(self) -> None:
        """Record it."""
        self._record("negotiationFinished")

    def textMessageReceived(self, message: str) -> None:
        """Record (and maybe echo) a text message."""
        self._record("text", message)
        if self.echo:
            assert self.transport is not None
            self.transport.sendTextMessage(message)

    def bytesMessageReceived(self, data: bytes) -> None:
        """Record (and maybe echo) a binary message."""
        self._record("bytes", data)
        if self.echo:
            assert self.transport is not None
            self.transport.sendBytesMessage(data)

    def pongReceived(self, payload: bytes) -> None:
        """Record a pong."""
        self._record("pong", payload)

    def connectionLost(self, reason: Failure) -> None:
        """Keep the reason."""
        self.lost = reason
        self._record("connectionLost", reason)

    def messages(self) -> list[tuple[str, Any]]:
        """Only the text/bytes messages, in order."""
        return [(kind, value) for kind, value in self.events if kind in ("text", "bytes")]


@implementer(IPushProducer)
class RecordingProducer:
    """A push producer that remembers its state, like a handler's data source."""

    def __init__(self) -> None:
        self.state = "producing"

    def pauseProducing(self) -> None:
        self.state = "paused"

    def resumeProducing(self) -> None:
        self.state = "producing"

    def stopProducing(self) -> None:
        self.state = "stopped"


class RecordingFactory:
    """A ``WebSocketServerFactory`` that keeps each request and handler it saw.

    Args:
        echo: whether the handlers it builds echo.
        reject: an exception ``buildProtocol`` raises instead of accepting.
    """

    def __init__(self, *, echo: bool = True, reject: Exception | None = None) -> None:
        self.echo = echo
        self.reject = reject
        self.requests: list[Any] = []
        self.handlers: list[RecordingHandler] = []

    def buildProtocol(self, request: Any) -> RecordingHandler:
        """Record the request; reject it or build a handler."""
        self.requests.append(request)
        if self.reject is not None:
            raise self.reject
        handler = RecordingHandler(echo=self.echo)
        self.handlers.append(handler)
        return handler
