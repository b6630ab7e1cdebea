"""An endpoint's ``message_rate``: a gate in front of each of its handlers.

The gate stands between the wire protocol and the handler only on endpoints that
set a rate, so every other connection pays nothing for the feature. Each text or
binary message takes a token from the connection's bucket
(:class:`wsdaemon.ratelimit.MessageLimiter`, the reactor's time passed in); a
message finding none is not delivered, and the gate tells the core to fail the
connection with :class:`~wsdaemon.core.errors.MessageRateExceeded`, whose type
carries the close code (1008): the adapter names the reason, never a code.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure

from wsdaemon.core import Connection, MessageRateExceeded
from wsdaemon.interfaces import WebSocketProtocol, WebSocketTransport
from wsdaemon.ratelimit import MessageLimiter, MessageRate


class MessageRateGate:
    """``handler`` behind ``rate``: what it would receive, less the messages over the rate.

    Args:
        handler: the endpoint's handler for this connection.
        connection: the connection's core, told to fail when the rate is passed.
        rate: the endpoint's ``message_rate`` and ``message_burst``.
        reactor: the clock the bucket refills by.
    """

    def __init__(
        self, handler: WebSocketProtocol, connection: Connection, rate: MessageRate, reactor: IReactorTime
    ) -> None:
        self.handler = handler
        self._connection = connection
        self._reactor = reactor
        self._messages = MessageLimiter(rate, reactor.seconds())

    def negotiationStarted(self, transport: WebSocketTransport) -> None:
        """Passed on (the bucket started full when the gate was built, as the connection opened)."""
        self.handler.negotiationStarted(transport)

    def negotiationFinished(self) -> None:
        """Passed on."""
        self.handler.negotiationFinished()

    def textMessageReceived(self, message: str) -> None:
        """Deliver the message if it is within the rate."""
        if self._within_rate():
            self.handler.textMessageReceived(message)

    def bytesMessageReceived(self, data: bytes) -> None:
        """Deliver the message if it is within the rate."""
        if self._within_rate():
            self.handler.bytesMessageReceived(data)

    def pongReceived(self, payload: bytes) -> None:
        """Passed on: control frames are not messages."""
        self.handler.pongReceived(payload)

    def connectionLost(self, reason: Failure) -> None:
        """Passed on."""
        self.handler.connectionLost(reason)

    def __getattr__(self, name: str) -> Any:
        """Anything else is the handler's own (its extra methods and attributes)."""
        return getattr(self.handler, name)

    def __repr__(self) -> str:
        return f"<{self.handler!r} behind message_rate {self._messages.rate.rate:g}/s>"

    def _within_rate(self) -> bool:
        """Take a token for one message; without one, fail the connection (1008) and drop the message."""
        if self._messages.allow(self._reactor.seconds()):
            return True
        self._connection.fail_with(MessageRateExceeded())
        return False
