"""The ``echo`` handler: every message goes back to its sender unchanged."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from twisted.python.failure import Failure
from twisted.web.server import Request

from wsdaemon.interfaces import HandlerOptionsError, InvalidHandlerOptions, WebSocketTransport


class EchoProtocol:
    """Sends each text or binary message straight back."""

    transport: WebSocketTransport

    def negotiationStarted(self, transport: WebSocketTransport) -> None:
        """Keep the transport to answer through."""
        self.transport = transport

    def negotiationFinished(self) -> None:
        """Nothing to send first."""

    def textMessageReceived(self, message: str) -> None:
        """Echo text as text."""
        self.transport.sendTextMessage(message)

    def bytesMessageReceived(self, data: bytes) -> None:
        """Echo binary as binary."""
        self.transport.sendBytesMessage(data)

    def pongReceived(self, payload: bytes) -> None:
        """Pongs carry nothing to echo."""

    def connectionLost(self, reason: Failure) -> None:
        """Nothing to clean up."""


class EchoFactory:
    """One :class:`EchoProtocol` per connection."""

    def buildProtocol(self, request: Request) -> EchoProtocol:
        """Accept every request the endpoint's policy let through."""
        return EchoProtocol()


def build_factory(options: Mapping[str, Any], endpoint: str) -> EchoFactory:
    """Echo takes no options; any option is a mistake worth reporting.

    Raises:
        HandlerOptionsError: for any option given.
    """
    if options:
        raise InvalidHandlerOptions(
            [HandlerOptionsError(name, "no options (echo has none)", value) for name, value in options.items()]
        )
    return EchoFactory()
