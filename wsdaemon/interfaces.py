"""The public API for handler authors.

The per-connection API mirrors Twisted's own ``twisted.web.websocket`` exactly
(``WebSocketProtocol``, ``WebSocketTransport``, ``WebSocketServerFactory``), so a
handler written for Twisted runs on wsdaemon unchanged. What wsdaemon adds is
the plugin interface, :class:`IHandlerPlugin`, through which a handler is found
by name and built from an endpoint's configuration options.
"""

from __future__ import annotations

import typing
from collections.abc import Mapping
from typing import Any, Protocol, TypeVar

from twisted.internet.interfaces import IPushProducer
from twisted.plugin import IPlugin
from twisted.python.failure import Failure
from zope.interface import Attribute

if typing.TYPE_CHECKING:
    from twisted.web.server import Request

    from wsdaemon.core.frames import SharedMessage


class WebSocketTransport(Protocol):
    """What a handler uses to talk back to its peer."""

    def sendTextMessage(self, text: str) -> None:
        """Send a text message."""

    def sendBytesMessage(self, data: bytes) -> None:
        """Send a binary message."""

    def loseConnection(self, code: int = 1000) -> None:
        """Start the closing handshake with ``code``."""

    def ping(self, payload: bytes = b"") -> None:
        """Send a Ping; the answer arrives as ``pongReceived``."""

    def attachProducer(self, producer: IPushProducer) -> None:
        """Have ``producer`` paused while the peer is not reading fast enough."""

    def detachProducer(self) -> None:
        """Undo :meth:`attachProducer`."""


class DaemonTransport(WebSocketTransport, Protocol):
    """wsdaemon's transport: Twisted's API plus extensions a handler may use.

    A handler meant to run elsewhere too (on ``twisted.web.websocket``) checks
    for these with ``getattr`` and falls back to the plain API.
    """

    #: The endpoint path the connection came in on, and the negotiated subprotocol (or None).
    path: str
    subprotocol: str | None

    def loseConnection(self, code: int = 1000, reason: str = "") -> None:
        """Start the closing handshake with ``code`` and a short ``reason`` (it goes on the wire)."""

    def getPeer(self) -> Any:
        """The peer's address (an ``IPv4Address`` on TCP)."""

    def sendSharedMessage(self, message: SharedMessage) -> None:
        """Send a message framed once for many connections (a broadcast).

        Each connection that can writes the same bytes; one with
        permessage-deflate encodes the message itself. Dropped once closing began.
        """

    def pauseReceiving(self) -> None:
        """Stop reading from the peer (backpressure from where the handler forwards messages)."""

    def resumeReceiving(self) -> None:
        """Read from the peer again."""


class WebSocketProtocol(Protocol):
    """What a handler implements: one instance per WebSocket connection."""

    def negotiationStarted(self, transport: WebSocketTransport) -> None:
        """The connection exists; ``transport`` is how to send."""

    def negotiationFinished(self) -> None:
        """The 101 has been sent: messages may flow."""

    def pongReceived(self, payload: bytes) -> None:
        """A Pong arrived (answer to :meth:`WebSocketTransport.ping`, or unsolicited)."""

    def textMessageReceived(self, message: str) -> None:
        """A complete text message arrived."""

    def bytesMessageReceived(self, data: bytes) -> None:
        """A complete binary message arrived."""

    def connectionLost(self, reason: Failure) -> None:
        """The connection is gone; ``reason.value`` has ``code`` and ``reason`` attributes."""


_WSP = TypeVar("_WSP", bound=WebSocketProtocol, covariant=True)


class WebSocketServerFactory(Protocol[_WSP]):
    """Builds the handler for one accepted upgrade request."""

    def buildProtocol(self, request: Request) -> _WSP:
        """Return the handler, or raise :class:`ConnectionRejected` to refuse before the 101."""


class ConnectionRejected(Exception):
    """Raised by ``buildProtocol`` to refuse a connection with an HTTP status before the 101.

    Args:
        status: the HTTP status to answer with (4xx or 5xx).
        reason: a short plain-text body; it goes on the wire, so keep secrets out of it.
        headers: extra response headers, e.g. ``[("Retry-After", "10")]``.
    """

    def __init__(
        self, status: int = 403, reason: str = "connection rejected", headers: list[tuple[str, str]] | None = None
    ) -> None:
        super().__init__(status, reason)
        self.status = status
        self.reason = reason
        self.headers = list(headers or [])


class HandlerOptionsError(Exception):
    """A handler's options are invalid; carries the option name and what was expected."""

    def __init__(self, option: str, expected: str, got: object) -> None:
        super().__init__(f"{option}: expected {expected}, got {got!r}")
        self.option = option
        self.expected = expected
        self.got = got


class IHandlerPlugin(IPlugin):
    """A named kind of WebSocket endpoint, discoverable with ``twisted.plugin``.

    Install a module in any package's ``twisted/plugins/`` that creates a
    provider of this interface, and endpoints can use it with ``handler = "name"``.
    """

    name = Attribute("The name endpoints use in ``handler = ...``: lower-case, unique.")
    description = Attribute("One line saying what the handler does.")
    options = Attribute("Mapping of option name to a one-line description (type and default).")

    def buildFactory(options: Mapping[str, Any], endpoint: str) -> WebSocketServerFactory[Any]:
        """Validate ``options`` and return the factory for the endpoint at path ``endpoint``.

        Raises:
            HandlerOptionsError: an option is unknown, missing or of the wrong type.
        """
