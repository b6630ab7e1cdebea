"""shout: answers every text message in capitals; binary messages are refused with 1003.

This is the implementation module the plugin descriptor names. wsdaemon imports
it only when an endpoint uses ``handler = "shout"``, and calls
:func:`build_factory` once per endpoint, at startup.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from twisted.python.failure import Failure
from twisted.web.server import Request

from wsdaemon.interfaces import HandlerOptionsError, WebSocketTransport

MAX_SUFFIX = 16


class ShoutProtocol:
    """One connection: the same methods as Twisted's ``twisted.web.websocket.WebSocketProtocol``."""

    transport: WebSocketTransport

    def __init__(self, suffix: str) -> None:
        self.suffix = suffix

    def negotiationStarted(self, transport: WebSocketTransport) -> None:
        """Keep the transport: it is how we answer."""
        self.transport = transport

    def negotiationFinished(self) -> None:
        """Nothing to say first."""

    def textMessageReceived(self, message: str) -> None:
        """Shout it back."""
        self.transport.sendTextMessage(message.upper() + self.suffix)

    def bytesMessageReceived(self, data: bytes) -> None:
        """Binary cannot be shouted: close with 1003 (unsupported data, RFC 6455 §7.4.1)."""
        self.transport.loseConnection(1003)

    def pongReceived(self, payload: bytes) -> None:
        """Nothing to do."""

    def connectionLost(self, reason: Failure) -> None:
        """Nothing to clean up."""


class ShoutFactory:
    """Builds one :class:`ShoutProtocol` per accepted connection."""

    def __init__(self, suffix: str = "!") -> None:
        self.suffix = suffix

    def buildProtocol(self, request: Request) -> ShoutProtocol:
        """Every request that passed the endpoint's policy is welcome."""
        return ShoutProtocol(self.suffix)


def build_factory(options: Mapping[str, Any], endpoint: str) -> ShoutFactory:
    """Check the endpoint's options and build its factory.

    wsdaemon has already refused options the plugin does not declare; the
    types and values are ours to check. A HandlerOptionsError stops the daemon
    at startup with ``endpoints[N].options.suffix: expected ..., got ...``.
    """
    suffix = options.get("suffix", "!")
    if not isinstance(suffix, str) or len(suffix) > MAX_SUFFIX:
        raise HandlerOptionsError("suffix", f"a string of at most {MAX_SUFFIX} characters", suffix)
    return ShoutFactory(suffix)
