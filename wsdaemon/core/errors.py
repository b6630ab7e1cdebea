"""Every failure the core knows, each carrying its answer on the wire.

Errors split by blame (the h11/wsproto habit):

* :class:`RemoteError` and its subclasses: the *peer* misbehaved. Each class has
  a ``close_code`` (after the handshake) or an HTTP ``status`` plus
  ``headers`` (during the handshake). Their messages come from our own strings,
  so they are safe to put on the wire.
* :class:`LocalProtocolError`: *our caller* (the adapter or a handler) misused
  the API, e.g. sent a message after closing. It is raised to that caller.
"""

from __future__ import annotations

from typing import ClassVar

from wsdaemon.core.close import CloseCode


class LocalProtocolError(Exception):
    """The local code asked for something the protocol state does not allow."""


class RemoteError(Exception):
    """Base class for anything the peer did wrong."""


# --- after the handshake: each maps to a close code (RFC 6455 §7.4.1) -------


class ProtocolViolation(RemoteError):
    """Framing, opcode, RSV, control-frame or close-payload rules were broken."""

    close_code: ClassVar[CloseCode] = CloseCode.PROTOCOL_ERROR


class InvalidUTF8(ProtocolViolation):
    """A text message or close reason is not valid UTF-8 (RFC 6455 §8.1)."""

    close_code: ClassVar[CloseCode] = CloseCode.INVALID_DATA


class MessageTooBig(ProtocolViolation):
    """A message, frame or fragment count passed its configured limit."""

    close_code: ClassVar[CloseCode] = CloseCode.MESSAGE_TOO_BIG


class PolicyViolation(ProtocolViolation):
    """The peer broke a local policy, e.g. it stopped reading what we send."""

    close_code: ClassVar[CloseCode] = CloseCode.POLICY_VIOLATION


# --- during the handshake: each maps to an HTTP status ----------------------


class HandshakeError(RemoteError):
    """The upgrade request cannot be accepted; answered with ``status``."""

    status: ClassVar[int] = 400
    headers: ClassVar[tuple[tuple[str, str], ...]] = ()


class BadRequest(HandshakeError):
    """A malformed upgrade request (RFC 6455 §4.2.1): 400."""


class UnsupportedVersion(HandshakeError):
    """A ``Sec-WebSocket-Version`` other than 13 (RFC 6455 §4.4): 426 + our version."""

    status: ClassVar[int] = 426
    headers: ClassVar[tuple[tuple[str, str], ...]] = (("Sec-WebSocket-Version", "13"),)


class UpgradeRequired(HandshakeError):
    """A plain GET on a WebSocket endpoint (RFC 7231 §6.5.15): 426 + ``Upgrade``."""

    status: ClassVar[int] = 426
    headers: ClassVar[tuple[tuple[str, str], ...]] = (
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
    )


class ForbiddenOrigin(HandshakeError):
    """A browser ``Origin`` the endpoint does not allow (RFC 6455 §10.2): 403."""

    status: ClassVar[int] = 403


class ServiceUnavailable(HandshakeError):
    """A connection limit is reached: 503, asking the client to come back later."""

    status: ClassVar[int] = 503
    headers: ClassVar[tuple[tuple[str, str], ...]] = (("Retry-After", "5"),)


class InvalidResponse(RemoteError):
    """The server's answer to our upgrade request is not a valid 101 (client side)."""
