"""The public API for handler authors.

The per-connection API mirrors Twisted's own ``twisted.web.websocket`` exactly
(``WebSocketProtocol``, ``WebSocketTransport``, ``WebSocketServerFactory``), so a
handler written for Twisted runs on wsdaemon unchanged. What wsdaemon adds is
the plugin interface, :class:`IHandlerPlugin`, through which a handler is found
by name and built from an endpoint's configuration options, with the
:class:`HandlerContext` the daemon lends to the factory it builds; who connected
(:class:`ClientAddress`, :class:`Identity`); and the authentication step every
endpoint runs before the handshake, :class:`IAuthenticator`.
"""

from __future__ import annotations

import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from twisted.application.service import IServiceCollection
from twisted.internet.interfaces import IPushProducer
from twisted.plugin import IPlugin
from twisted.python.failure import Failure
from zope.interface import Attribute, Interface

if typing.TYPE_CHECKING:
    from twisted.internet.defer import Deferred
    from twisted.web.server import Request

    from wsdaemon.broker import IBroker
    from wsdaemon.core.frames import SharedMessage


@dataclass(frozen=True, slots=True)
class ClientAddress:
    """Where a connection comes from, as the daemon resolved it (the address its limits and logs use).

    The TCP peer; behind a trusted proxy (``[proxy] trusted_networks``, or a PROXY-protocol
    listener), the client the proxy speaks for.

    Attributes:
        host: the IP address as text ("192.0.2.7", "2001:db8::1"); for a peer that is
            not an IP address (a UNIX socket), that address as text.
        port: the client's port, or None when it is unknown.
    """

    host: str
    port: int | None = None

    def __str__(self) -> str:
        return self.host if self.port is None else f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class Identity:
    """Who a connection proved to be, as its endpoint's :class:`IAuthenticator` verified it.

    Attributes:
        name: the user: a user name, or a token's subject ("" for a token without ``sub``).
        method: how it was verified: the authenticator's name ("basic", "jwt", ...).
        claims: what the credential says besides (a token's claims); empty when it says nothing more.
        expires_at: when the credential stops being valid, in POSIX seconds (a token's ``exp``),
            or None; with ``close_on_expiry = true`` the endpoint closes the connection with
            1008 once it has passed.
    """

    name: str
    method: str
    claims: Mapping[str, Any] = field(default_factory=dict, hash=False)
    expires_at: float | None = None


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
    #: The client as the daemon resolved it (what its per-client limits and log lines use).
    clientAddress: ClientAddress
    #: Who the client proved to be before the 101 (see :class:`IAuthenticator`); None when anonymous.
    identity: Identity | None

    def loseConnection(self, code: int = 1000, reason: str = "") -> None:
        """Start the closing handshake with ``code`` and a short ``reason`` (it goes on the wire)."""

    def getPeer(self) -> Any:
        """The TCP peer's address (an ``IPv4Address`` on TCP): behind a proxy, the proxy's; see ``clientAddress``."""

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
        why: for the log line only: why, in the operator's words (default: ``reason``); never
            a credential, and not sent to the client.
    """

    def __init__(
        self,
        status: int = 403,
        reason: str = "connection rejected",
        headers: list[tuple[str, str]] | None = None,
        *,
        why: str | None = None,
    ) -> None:
        super().__init__(status, reason)
        self.status = status
        self.reason = reason
        self.headers = list(headers or [])
        self.why = why or reason


class AuthenticationRequired(ConnectionRejected):
    """Raised by an :class:`IAuthenticator`: the request has no valid credentials: 401.

    Args:
        reason: a short plain-text body; it goes on the wire, so never put the credential in it.
        challenge: the ``WWW-Authenticate`` value telling the client how to authenticate,
            e.g. ``'Basic realm="chat"'`` or ``"Bearer"``; None for none.
        headers: further response headers.
        why: for the log line only (see :class:`ConnectionRejected`).
    """

    def __init__(
        self,
        reason: str = "authentication required",
        challenge: str | None = None,
        headers: list[tuple[str, str]] | None = None,
        *,
        why: str | None = None,
    ) -> None:
        extra = list(headers or [])
        if challenge is not None:
            extra.insert(0, ("WWW-Authenticate", challenge))
        super().__init__(401, reason, extra, why=why)
        self.challenge = challenge


class IAuthenticator(Interface):
    """Checks who sends an upgrade request, before the handshake (one per endpoint).

    Every WebSocket endpoint runs its authenticator after the request passed
    the per-client limits, the origin check and the handshake checks, and
    before the handler's ``buildProtocol``. The identity it returns is what the
    handler finds as ``request.identity`` and later ``transport.identity``.
    The built-in default, ``none``, lets everyone in anonymously.
    """

    def authenticate(request: Request) -> Identity | Deferred[Identity | None] | None:
        """Verify the credentials ``request`` carries.

        It may answer later with a Deferred (a backend to ask): the upgrade
        waits for it, at most the endpoint's ``[endpoints.auth] timeout_seconds``
        (then 503: it fails closed); the Deferred is cancelled if the client
        goes away meanwhile, or when that time is up.
        Return a fresh Deferred for each request: the endpoint adds its callbacks to it.

        Returns:
            The verified :class:`Identity`, None to let the request in anonymously,
            or a Deferred firing with either.

        Raises:
            ConnectionRejected: refuse the request with its status, e.g.
                :class:`AuthenticationRequired` (401 with ``WWW-Authenticate``), or
                ``ConnectionRejected(403, ...)``. A Deferred may fail with it as well.
                Any other exception is a bug: 500, logged, and nothing of it on the wire.
        """


class HandlerOptionsError(Exception):
    """A handler's options are invalid; carries the option name and what was expected."""

    def __init__(self, option: str, expected: str, got: object) -> None:
        super().__init__(f"{option}: expected {expected}, got {got!r}")
        self.option = option
        self.expected = expected
        self.got = got

    @property
    def errors(self) -> tuple[HandlerOptionsError, ...]:
        """Every bad option this error stands for: just this one (see :class:`InvalidHandlerOptions`)."""
        return (self,)


class InvalidHandlerOptions(HandlerOptionsError):
    """Several bad options of one endpoint, raised together so the daemon reports them all at once.

    It is a :class:`HandlerOptionsError` (the first problem's ``option``, ``expected``
    and ``got``), so code that catches or inspects one still works; ``errors`` has them all.
    """

    def __init__(self, errors: Sequence[HandlerOptionsError]) -> None:
        flat = tuple(each for error in errors for each in error.errors)
        if not flat:
            raise ValueError("InvalidHandlerOptions needs at least one HandlerOptionsError")
        super().__init__(flat[0].option, flat[0].expected, flat[0].got)
        self.args = ("; ".join(str(error) for error in flat),)
        self._errors = flat

    @property
    def errors(self) -> tuple[HandlerOptionsError, ...]:
        """Each bad option, in the order they were found."""
        return self._errors


@dataclass(frozen=True)
class HandlerContext:
    """What the daemon lends an endpoint's handler factory: its reactor and a place in its service tree.

    The daemon passes one to ``build_factory(options, endpoint, context)`` (and to
    :meth:`IHandlerPlugin.buildFactory`) when the endpoint is built, at startup or on a
    reload. A handler that schedules, spawns or connects uses ``context.reactor``, never the
    global reactor, so its tests can pass a memory clock or a fake. A handler with something
    to finish at shutdown (programs to end, a link to close) adds an ``IService`` to
    ``context.services`` when it first needs one: the daemon stops those services after
    every WebSocket has been drained, and waits for a Deferred their ``stopService`` returns.

    Fields are only ever added, each with a default, so a handler that reads the fields it
    knows keeps working. Being frozen, one context can be shared by every endpoint of a daemon.

    Attributes:
        reactor: the daemon's reactor: time (``callLater``), processes (``spawnProcess``),
            TCP (``connectTCP``), the reactor core. Typed ``Any`` because no single Twisted
            interface names all of these.
        services: where a handler's own services join the daemon's service tree.
        broker: where channels live (:class:`wsdaemon.broker.IBroker`): in this process, across
            the workers (the main process relays) or across hosts (Redis). One per daemon
            process, shared by every endpoint; None when the caller gave none (a handler then
            keeps its channels to itself, as ``broadcast`` does in a test).
    """

    reactor: Any
    services: IServiceCollection
    broker: IBroker | None = None


class IHandlerPlugin(IPlugin):
    """A named kind of WebSocket endpoint, discoverable with ``twisted.plugin``.

    Install a module in any package's ``wsdaemon_plugins/`` that creates a
    provider of this interface, and endpoints can use it with ``handler = "name"``.
    """

    name = Attribute("The name endpoints use in ``handler = ...``: lower-case, unique.")
    description = Attribute("One line saying what the handler does.")
    options = Attribute("Mapping of option name to a one-line description (type and default).")

    def buildFactory(options: Mapping[str, Any], endpoint: str, context: HandlerContext) -> WebSocketServerFactory[Any]:
        """Validate ``options`` and return the factory for the endpoint at path ``endpoint``.

        ``context`` is the daemon's :class:`HandlerContext`. A plugin written before it
        existed declares ``buildFactory(options, endpoint)``; the daemon sees that from the
        signature and calls it without the context (:func:`wsdaemon.plugins.build_handler_factory`).

        Raises:
            HandlerOptionsError: an option is unknown, missing or of the wrong type.
        """


class IAuthenticatorPlugin(IPlugin):
    """A named kind of authentication, discoverable with ``twisted.plugin`` (as handlers are).

    Install a module in any package's ``wsdaemon_plugins/`` that creates a provider of
    this interface, and endpoints can use it with ``[endpoints.auth] type = "name"``;
    the table's other keys (all but ``type``, ``close_on_expiry`` and ``timeout_seconds``)
    are its options. The built-ins ``none``, ``jwt`` and ``basic`` are plugins too.
    """

    name = Attribute("The name endpoints use in ``type = ...``: lower-case, unique.")
    description = Attribute("One line saying what the authenticator checks.")
    options = Attribute("Mapping of option name to a one-line description (type and default).")

    def buildAuthenticator(options: Mapping[str, Any], endpoint: str, context: HandlerContext) -> IAuthenticator:
        """Validate ``options``, read any files they name, and return the authenticator of ``endpoint``.

        Called at start and again on every SIGHUP (so key and password files are re-read);
        a failure at start stops it, a failure on reload keeps the running authenticator.
        ``context`` is the daemon's :class:`HandlerContext`, as handlers get it: the
        reactor (its clock, its thread pool, its network) and a place for services to
        stop at shutdown (a connection pool to close).

        Raises:
            HandlerOptionsError: an option is unknown, missing or of the wrong type, or a
                file it names cannot be used (say which file, and why).
        """
