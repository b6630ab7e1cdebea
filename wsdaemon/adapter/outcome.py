"""How a WebSocket connection ended and who was at the other end: what the handler is told, what the log says."""

from __future__ import annotations

from typing import Any, Protocol

from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.interfaces import ISSLTransport
from twisted.logger import Logger, LogLevel

from wsdaemon.admission import resolve_client_address
from wsdaemon.interfaces import ClientAddress, Identity

__all__ = [
    "PeerInfo",
    "Summarized",
    "WebSocketClosed",
    "WebSocketLost",
    "certificate_subject",
    "log_closed",
    "peer_certificate",
]


class WebSocketClosed(ConnectionDone):
    """The connection ended after a close handshake; ``code`` and ``reason`` say how."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"WebSocket closed with {code} {reason}".rstrip())
        self.code = code
        self.reason = reason


class WebSocketLost(ConnectionLost):
    """The connection ended without a completed close handshake (1006, or we failed it)."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"WebSocket lost: {code} {reason}".rstrip())
        self.code = code
        self.reason = reason


class Summarized(Protocol):
    """What the summary line reads off a connection (the wire protocol's counters)."""

    path: str
    subprotocol: str | None
    bytes_in: int
    bytes_out: int
    messages_in: int
    messages_out: int


def log_closed(log: Logger, source: Summarized, *, peer: str, code: int, reason: str, duration: float) -> None:
    """Log the one summary line of a closed connection (DESIGN §4).

    The text is formatted here once, with an f-string, rather than by
    twisted.logger parsing an eleven-field format for every event (the line
    is part of the price of every connection); the fields stay in the event
    for ``--log-format json``.
    """
    code = int(code)
    summary = (
        f"websocket closed peer={peer} path={source.path} subprotocol={source.subprotocol} code={code} "
        f"reason={reason!r} duration={duration:.3f}s bytes_in={source.bytes_in} bytes_out={source.bytes_out} "
        f"messages_in={source.messages_in} messages_out={source.messages_out}"
    )
    log.emit(
        LogLevel.info,
        "{summary}",
        summary=summary,
        peer=peer,
        path=source.path,
        subprotocol=source.subprotocol,
        code=code,
        reason=reason,
        duration=duration,
        bytes_in=source.bytes_in,
        bytes_out=source.bytes_out,
        messages_in=source.messages_in,
        messages_out=source.messages_out,
    )


def peer_certificate(transport: Any) -> Any:
    """The peer's TLS certificate (a pyOpenSSL ``X509``); None on plain TCP or when it sent none."""
    if transport is None or not ISSLTransport.providedBy(transport):
        return None
    return transport.getPeerCertificate()


def certificate_subject(certificate: Any) -> str | None:
    """A certificate's subject, RFC 4514 style ("CN=alice,O=Example"), or None without one."""
    if certificate is None:
        return None
    return str(certificate.to_cryptography().subject.rfc4514_string())


class PeerInfo:
    """Who is at the other end of a WebSocket: the part of the handler's transport API that says so.

    Mixed into the wire protocol, which sets ``transport`` (Twisted), ``_client``
    (the address the daemon's admission resolved, or None) and ``identity``.

    Attributes:
        identity: who the client proved to be before the 101 (the endpoint's
            authenticator), or None when it connected anonymously.
    """

    transport: Any
    _client: ClientAddress | None
    identity: Identity | None

    def getPeer(self) -> Any:
        """The TCP peer's address, as Twisted's transport reports it (behind a proxy: the proxy)."""
        assert self.transport is not None
        return self.transport.getPeer()

    @property
    def clientAddress(self) -> ClientAddress:
        """The client as the daemon's admission resolved it: what its limits and log lines use.

        Behind a trusted proxy that is the proxied client, where :meth:`getPeer` is
        the proxy. A connection built without one (the client side) uses the transport's peer.
        """
        if self._client is None:
            self._client = resolve_client_address(self.transport.getPeer() if self.transport is not None else None)
        return self._client

    def getPeerCertificate(self) -> Any:
        """The peer's TLS certificate (a pyOpenSSL ``X509``); None on plain TCP or when it sent none."""
        return peer_certificate(self.transport)

    @property
    def peerCertificateSubject(self) -> str | None:
        """The subject of the peer's TLS client certificate, RFC 4514 style ("CN=alice,O=Example"), or None.

        Set only on a TLS listener with ``client_certs`` "optional" or "required", whose
        certificate authority already verified the certificate during the TLS handshake.
        """
        return certificate_subject(self.getPeerCertificate())
