"""The client side on the reactor: send the upgrade, check the 101, then run the same wire protocol.

Used by ``python -m wsdaemon.client`` and by tests that need a client built on
our own core. :class:`ClientHandshake` is the client's half of the opening
handshake without I/O; the in-memory client of :mod:`wsdaemon.testing` drives
it too, so both clients read and check a server's answer the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from twisted.internet.defer import Deferred
from twisted.internet.endpoints import HostnameEndpoint, wrapClientTLS
from twisted.internet.interfaces import IReactorTime, IStreamClientEndpoint
from twisted.internet.protocol import Factory, Protocol
from twisted.python.failure import Failure

from wsdaemon.adapter.deadlines import Deadline
from wsdaemon.adapter.protocol import WebSocketWireProtocol
from wsdaemon.core import Connection, InvalidResponse, Limits, Side, build_request, check_response
from wsdaemon.core.handshake import response_extensions
from wsdaemon.core.http import ResponseHead, find_head_end, parse_response_head
from wsdaemon.interfaces import WebSocketProtocol


class HandshakeFailed(Exception):
    """The server did not accept our upgrade; the message says what it answered.

    Args:
        message: one line saying what went wrong.
        status: the HTTP status of the server's answer, when it sent one
            (a reconnecting client retries a 5xx or 429, not a 404).
        retry_after_seconds: the answer's ``Retry-After`` in seconds, if it had one.
    """

    def __init__(self, message: str, status: int | None = None, retry_after_seconds: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after_seconds = retry_after_seconds


def retry_after(response: ResponseHead) -> float | None:
    """A ``Retry-After`` given in seconds (RFC 9110 §10.2.3), else None (an HTTP date is not worth parsing here)."""
    value = response.get("retry-after")
    if value is None or not value.strip().isdigit():
        return None
    return float(value.strip())


class TLSFailed(HandshakeFailed):
    """The TLS handshake failed: most often the server's certificate is not trusted or not for this host."""


def tls_failure(reason: Failure, host: str) -> TLSFailed | None:
    """A clear error for a TLS failure (certificate untrusted, wrong host, handshake refused), else None."""
    from OpenSSL.SSL import Error as SSLError
    from service_identity import VerificationError

    error = reason.value
    if isinstance(error, VerificationError):
        mismatches = ", ".join(type(item).__name__ for item in error.errors)
        return TLSFailed(f"TLS: the server's certificate is not valid for {host!r} ({mismatches}); not connecting")
    if isinstance(error, SSLError):
        text = reason.getErrorMessage()
        if "certificate verify failed" in text:
            hint = "pass --cafile with the CA that signed it"
            return TLSFailed(f"TLS: the certificate of {host!r} is not trusted (certificate verify failed); {hint}")
        return TLSFailed(f"TLS handshake with {host!r} failed: {text}")
    return None


@dataclass(frozen=True)
class Target:
    """A parsed ``ws://`` or ``wss://`` URL."""

    secure: bool
    host: str
    port: int
    resource: str

    @property
    def host_header(self) -> str:
        """The Host header value: the port is left out when it is the default."""
        default = 443 if self.secure else 80
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == default else f"{host}:{self.port}"


def parse_url(url: str) -> Target:
    """Split a WebSocket URL (RFC 6455 §3).

    Raises:
        ValueError: not a ws:// or wss:// URL with a host, or it has a fragment.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        raise ValueError(f"not a ws:// or wss:// URL: {url!r}")
    if parts.fragment:
        raise ValueError("a WebSocket URL cannot have a #fragment")
    secure = parts.scheme == "wss"
    resource = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Target(secure, parts.hostname, parts.port or (443 if secure else 80), resource)


class ClientHandshake:
    """The client's half of the opening handshake, without I/O: the request to send, then its answer checked.

    One implementation for every client we have (the reactor client below and
    ``wsdaemon.testing``'s in-memory one), so what counts as a valid answer and
    which extensions the client core runs with are decided in one place.

    Args:
        host: the ``Host`` header value.
        resource: the request target, e.g. ``"/chat?room=1"``.
        limits: the client core's limits (``http_max_header_bytes`` bounds the answer's head).
        subprotocols: what to offer, most preferred first.
        origin: the ``Origin`` header, or None for none.
        deflate: offer permessage-deflate (RFC 7692).
        headers: extra header lines to send, e.g. a token.
    """

    def __init__(
        self,
        host: str,
        resource: str,
        limits: Limits,
        *,
        subprotocols: Sequence[str] = (),
        origin: str | None = None,
        deflate: bool = False,
        headers: Sequence[tuple[str, str]] = (),
    ) -> None:
        self.limits = limits
        self.request = build_request(host, resource, tuple(subprotocols), origin, deflate=deflate)
        extra = "".join(f"{name}: {value}\r\n" for name, value in headers).encode("latin-1")
        #: The bytes to send: the request, with the extra headers before its blank line.
        self.data = self.request.data[:-2] + extra + b"\r\n"
        self._buffer = b""

    def receive_head(self, data: bytes) -> tuple[ResponseHead, bytes] | None:
        """Collect the answer's head; once it is complete, the parsed head and the bytes that followed it.

        Raises:
            InvalidResponse: the head is longer than ``http_max_header_bytes`` or is not HTTP/1.1.
        """
        self._buffer += data
        end = find_head_end(self._buffer)
        if (end if end >= 0 else len(self._buffer)) > self.limits.http_max_header_bytes:
            self._buffer = b""  # nothing of an oversized head is kept
            raise InvalidResponse("response head too large")
        if end < 0:
            return None
        head, rest = self._buffer[:end], self._buffer[end:]
        self._buffer = b""
        return parse_response_head(head), rest

    @property
    def pending_bytes(self) -> int:
        """Bytes of an incomplete answer head held so far (never more than ``http_max_header_bytes``)."""
        return len(self._buffer)

    def open(self, response: ResponseHead) -> tuple[Connection, str | None]:
        """Check the server's 101 and build the client core with what it accepted: (core, subprotocol).

        The core runs the negotiated permessage-deflate, if any, so messages are
        compressed and inflated without its user knowing.

        Raises:
            InvalidResponse: not a 101, a wrong accept key, or a subprotocol or extension we did not offer.
        """
        subprotocol = check_response(response, self.request)
        extensions = response_extensions(response, self.request)
        return Connection(Side.CLIENT, self.limits, extensions), subprotocol


class WebSocketClientProtocol(Protocol):
    """Sends the upgrade request, checks the answer, then hands over to the wire protocol."""

    def __init__(
        self,
        handler: WebSocketProtocol,
        target: Target,
        reactor: IReactorTime,
        limits: Limits,
        subprotocols: tuple[str, ...],
        origin: str | None,
        ready: Deferred[WebSocketWireProtocol],
        deflate: bool = True,
        *,
        keepalive: bool = False,
        headers: Sequence[tuple[str, str]] = (),
    ) -> None:
        self.handler = handler
        self.target = target
        self.reactor = reactor
        self.limits = limits
        self.keepalive = keepalive
        self.handshake = ClientHandshake(
            target.host_header,
            target.resource,
            limits,
            subprotocols=subprotocols,
            origin=origin,
            deflate=deflate,
            headers=headers,
        )
        self.ready = ready
        self.wire: WebSocketWireProtocol | None = None
        self._handshake_deadline = Deadline(reactor)

    def connectionMade(self) -> None:
        """Send the upgrade and give the server ``handshake_timeout_seconds`` to answer."""
        assert self.transport is not None
        self.transport.write(self.handshake.data)
        self._handshake_deadline.set(self.limits.handshake_timeout_seconds, self._timed_out)

    def dataReceived(self, data: bytes) -> None:
        """Collect the response head, then pass everything after it to the wire protocol."""
        if self.wire is not None:
            self.wire.dataReceived(data)
            return
        response: ResponseHead | None = None
        try:
            answer = self.handshake.receive_head(data)
            if answer is None:
                return
            response, rest = answer
            connection, subprotocol = self.handshake.open(response)
        except InvalidResponse as error:
            status = None if response is None else response.status
            wait = None if response is None else retry_after(response)
            self._fail(HandshakeFailed(str(error), status, wait))
            return
        self._handshake_deadline.cancel()
        self.wire = WebSocketWireProtocol(
            self.handler,
            connection,
            self.reactor,
            path=self.target.resource,
            subprotocol=subprotocol,
            keepalive=self.keepalive,
        )
        self.wire.makeConnection(self.transport)
        self.wire.finishNegotiation()
        self.ready.callback(self.wire)
        if rest:
            self.wire.dataReceived(rest)

    def connectionLost(self, reason: Failure = Failure(Exception("connection lost"))) -> None:
        """Before the 101 that is a failed handshake; after it, the wire protocol reports it."""
        self._handshake_deadline.cancel()
        if self.wire is not None:
            self.wire.connectionLost(reason)
        elif not self.ready.called:
            tls_error = tls_failure(reason, self.target.host) if self.target.secure else None
            self.ready.errback(
                tls_error
                or HandshakeFailed(f"connection closed before the handshake finished: {reason.getErrorMessage()}")
            )

    def _fail(self, error: Exception) -> None:
        if not self.ready.called:
            self.ready.errback(error)
        assert self.transport is not None
        self.transport.loseConnection()

    def _timed_out(self) -> None:
        self._fail(HandshakeFailed("no answer to the upgrade request within handshake_timeout_seconds"))
        self.transport.abortConnection()  # type: ignore[union-attr]


def client_endpoint(reactor: object, target: Target, cafile: str | None = None) -> IStreamClientEndpoint:
    """A TCP endpoint for ``ws://``; for ``wss://`` the same wrapped in TLS with hostname checks."""
    endpoint: IStreamClientEndpoint = HostnameEndpoint(reactor, target.host, target.port)
    if not target.secure:
        return endpoint
    from twisted.internet.ssl import optionsForClientTLS, platformTrust

    trust = platformTrust() if cafile is None else trust_from_cafile(cafile)
    return wrapClientTLS(optionsForClientTLS(target.host, trustRoot=trust), endpoint)


def trust_from_cafile(cafile: str) -> Any:
    """Trust every CA certificate in a PEM file (a bundle may hold several).

    Raises:
        ValueError: the file cannot be read or holds no PEM certificate.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding
    from twisted.internet.ssl import Certificate, trustRootFromCertificates

    try:
        with open(cafile, "rb") as handle:
            authorities = x509.load_pem_x509_certificates(handle.read())
    except OSError as error:
        raise ValueError(f"cannot read --cafile {cafile}: {error.strerror or error}") from None
    except ValueError:
        raise ValueError(f"--cafile {cafile} holds no PEM certificate") from None
    return trustRootFromCertificates(
        [Certificate.loadPEM(authority.public_bytes(Encoding.PEM)) for authority in authorities]
    )


def connect(
    reactor: IReactorTime,
    url: str,
    handler: WebSocketProtocol,
    *,
    limits: Limits | None = None,
    subprotocols: tuple[str, ...] = (),
    origin: str | None = None,
    cafile: str | None = None,
    deflate: bool = True,
    keepalive: bool = False,
    headers: Sequence[tuple[str, str]] = (),
    endpoint_factory: Callable[..., IStreamClientEndpoint] = client_endpoint,
) -> Deferred[WebSocketWireProtocol]:
    """Open a WebSocket to ``url``; fires with the wire protocol once the 101 is checked.

    The handler gets the usual ``negotiationStarted``/``negotiationFinished``
    and message callbacks, exactly as on the server side. With ``deflate``
    (the default) the client offers permessage-deflate. With ``keepalive`` the
    client pings every ``limits.ping_interval_seconds`` and fails the
    connection (1011 "keepalive timeout") when no pong comes within
    ``limits.pong_timeout_seconds``, like the server does. ``headers`` are
    extra request header lines (a token, say).

    The Deferred fails with :class:`HandshakeFailed` (its ``status`` set when
    the server answered something else than a 101), or with the endpoint's own
    error when no connection could be made (refused, unreachable, DNS).
    """
    target = parse_url(url)
    ready: Deferred[WebSocketWireProtocol] = Deferred()
    settings = limits or Limits()

    def build() -> WebSocketClientProtocol:
        return WebSocketClientProtocol(
            handler,
            target,
            reactor,
            settings,
            subprotocols,
            origin,
            ready,
            deflate,
            keepalive=keepalive,
            headers=headers,
        )

    connecting = endpoint_factory(reactor, target, cafile).connect(Factory.forProtocol(build))
    connecting.addErrback(lambda failure: None if ready.called else ready.errback(failure))
    return ready
