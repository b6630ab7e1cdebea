"""The ``tcp`` handler: a WebSocket-to-TCP relay, like websockify.

Rules for this file:

* Each connection opens its own TCP connection to the configured backend
  (``host``, ``port``); the client cannot choose where it goes.
* Bytes from the backend go to the peer as binary messages; every message
  from the peer (binary, or text as its UTF-8 bytes) goes to the backend.
* Nothing is read from the peer until the backend is connected. A backend
  that cannot be reached, or drops the connection, closes the WebSocket with
  1011 and a short reason; a backend that closes cleanly gives 1000.
* Backpressure both ways: a peer that does not read pauses reading from the
  backend; a backend that does not read pauses reading from the peer.
* Endpoints that list no ``subprotocols`` accept ``binary`` (what noVNC asks for).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IConnector, IPushProducer
from twisted.internet.protocol import ClientFactory, Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.server import Request
from zope.interface import implementer

from wsdaemon.handlers.options import REQUIRED, OptionReader
from wsdaemon.interfaces import HandlerContext, WebSocketTransport


@dataclass(frozen=True)
class TcpSettings:
    """An endpoint's validated ``tcp`` options (see ``--list-handlers``)."""

    host: str
    port: int
    connect_timeout_seconds: float = 10.0


def read_settings(options: Mapping[str, Any]) -> TcpSettings:
    """Validate the options.

    Raises:
        HandlerOptionsError: an option is missing, has the wrong type or is out of range.
    """
    read = OptionReader(options, collect=True)
    settings = TcpSettings(
        host=read.string("host", expected='the backend\'s host name or IP address, such as "127.0.0.1"'),
        port=read.integer("port", REQUIRED, 1, 65535),
        connect_timeout_seconds=read.number("connect_timeout_seconds", TcpSettings.connect_timeout_seconds, 0.1, 3600),
    )
    read.check()
    return settings


_CONNECTION_DONE = Failure(ConnectionDone())


@implementer(IPushProducer)
class _ReceivingFlow:
    """Registered with the backend's transport: a full backend buffer stops reading the peer."""

    def __init__(self, transport: Any) -> None:
        self.transport = transport

    def pauseProducing(self) -> None:
        """The backend is not reading: stop reading the peer."""
        self.transport.pauseReceiving()

    def resumeProducing(self) -> None:
        """The backend caught up."""
        self.transport.resumeReceiving()

    def stopProducing(self) -> None:
        """The backend connection is going away; the relay closes the WebSocket itself."""


class _Backend(Protocol):
    """The backend side of one relay."""

    def __init__(self, relay: TcpRelay) -> None:
        self.relay = relay

    def connectionMade(self) -> None:
        """Connected: the relay starts moving bytes."""
        self.relay.backend_connected(self.transport)

    def dataReceived(self, data: bytes) -> None:
        """Bytes for the peer."""
        self.relay.backend_data(data)

    def connectionLost(self, reason: Failure = _CONNECTION_DONE) -> None:
        """The backend went away."""
        self.relay.backend_lost(reason)


class _BackendFactory(ClientFactory):
    """Connects one relay to the backend and reports a failure to connect."""

    def __init__(self, relay: TcpRelay) -> None:
        self.relay = relay

    def buildProtocol(self, addr: Any) -> _Backend:
        """The relay's backend protocol."""
        return _Backend(self.relay)

    def clientConnectionFailed(self, connector: IConnector, reason: Failure) -> None:
        """Refused, unreachable or timed out."""
        self.relay.backend_failed(reason)


class TcpRelay:
    """The WebSocket side of one relay."""

    log = Logger()
    transport: WebSocketTransport

    def __init__(self, settings: TcpSettings, reactor: Any, endpoint: str) -> None:
        self.settings = settings
        self.reactor = reactor
        self.endpoint = endpoint
        self.backend: Any = None
        self.connector: IConnector | None = None
        self.pending: list[bytes] = []  # what the peer sent before the backend answered
        self.closed = False

    # --- WebSocketProtocol -------------------------------------------------------------

    def negotiationStarted(self, transport: WebSocketTransport) -> None:
        """Connect to the backend; hold the peer's messages back until connected."""
        self.transport = transport
        pause = getattr(transport, "pauseReceiving", None)
        if pause is not None:
            pause()
        settings = self.settings
        self.connector = self.reactor.connectTCP(
            settings.host, settings.port, _BackendFactory(self), timeout=settings.connect_timeout_seconds
        )

    def negotiationFinished(self) -> None:
        """The backend speaks first, if it wants to."""

    def textMessageReceived(self, message: str) -> None:
        """Text goes to the backend as its UTF-8 bytes."""
        self._to_backend(message.encode("utf-8"))

    def bytesMessageReceived(self, data: bytes) -> None:
        """Binary goes to the backend as it is."""
        self._to_backend(bytes(data))

    def pongReceived(self, payload: bytes) -> None:
        """Nothing for the backend."""

    def connectionLost(self, reason: Failure) -> None:
        """Close the backend connection (or stop connecting)."""
        self.closed = True
        self.pending = []
        if self.backend is not None:
            self.backend.loseConnection()
        elif self.connector is not None:
            self.connector.disconnect()

    # --- the backend's side -------------------------------------------------------------

    def backend_connected(self, backend: Any) -> None:
        """Send what the peer sent so far, wire backpressure, and read the peer again."""
        if self.closed:
            backend.loseConnection()
            return
        self.backend = backend
        pending, self.pending = self.pending, []
        if pending:
            backend.writeSequence(pending)
        self.transport.attachProducer(backend)
        if getattr(self.transport, "pauseReceiving", None) is not None:
            backend.registerProducer(_ReceivingFlow(self.transport), True)
            self.transport.resumeReceiving()  # type: ignore[attr-defined]

    def backend_data(self, data: bytes) -> None:
        """Backend bytes become one binary message."""
        if not self.closed:
            self.transport.sendBytesMessage(data)

    def backend_failed(self, reason: Failure) -> None:
        """The backend could not be reached: 1011."""
        if self.closed:
            return
        self.log.info(
            "{endpoint}: backend {host}:{port} unavailable: {why}",
            endpoint=self.endpoint,
            host=self.settings.host,
            port=self.settings.port,
            why=reason.getErrorMessage(),
        )
        self.transport.loseConnection(1011, "backend unavailable")  # type: ignore[call-arg]

    def backend_lost(self, reason: Failure) -> None:
        """The backend closed: 1000 when it did so cleanly, else 1011."""
        self.backend = None
        if self.closed:
            return
        if reason.check(ConnectionDone):
            self.transport.loseConnection(1000, "backend closed the connection")  # type: ignore[call-arg]
        else:
            self.log.info(
                "{endpoint}: backend connection lost: {why}", endpoint=self.endpoint, why=reason.getErrorMessage()
            )
            self.transport.loseConnection(1011, "backend connection lost")  # type: ignore[call-arg]

    def _to_backend(self, data: bytes) -> None:
        if self.backend is not None:
            self.backend.write(data)
        elif not self.closed:
            self.pending.append(data)


class TcpFactory:
    """Builds one :class:`TcpRelay` per connection."""

    #: Offered when the endpoint lists no ``subprotocols``: noVNC asks for ``binary``.
    defaultSubprotocols = ("binary",)

    def __init__(self, settings: TcpSettings, endpoint: str, reactor: Any) -> None:
        self.settings = settings
        self.endpoint = endpoint
        self.reactor = reactor  # the daemon's (HandlerContext.reactor): it connects and keeps time

    def buildProtocol(self, request: Request) -> TcpRelay:
        """A relay to the backend, connecting on the daemon's reactor."""
        return TcpRelay(self.settings, self.reactor, self.endpoint)


def build_factory(options: Mapping[str, Any], endpoint: str, context: HandlerContext) -> TcpFactory:
    """The ``tcp`` handler's factory for one endpoint; it connects with ``context.reactor``.

    Raises:
        HandlerOptionsError: an option is missing, has the wrong type or is out of range.
    """
    return TcpFactory(read_settings(options), endpoint, context.reactor)
