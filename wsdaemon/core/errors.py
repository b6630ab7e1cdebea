"""Every failure the core knows, each carrying its answer on the wire: the one table (DESIGN §2.4).

Errors split by blame (the h11/wsproto habit):

* :class:`RemoteError` and its subclasses: the *peer* misbehaved. Each class has
  a ``close_code`` (after the handshake) or an HTTP ``status`` plus
  ``headers`` (during the handshake). Their messages come from our own strings,
  so they are safe to put on the wire.
* :class:`InternalError`: *our* side broke (a handler raised: a bug by
  definition). It closes with 1011 and its fixed message, so no detail of the
  bug reaches the wire (house rule 3).
* :class:`LocalProtocolError`: *our caller* (the adapter or a handler) misused
  the API, e.g. sent a message after closing. It is raised to that caller.

Closes we start for a reason of our own that is no failure (an idle timeout, a
shutdown) are :class:`LocalClose` values in the same table, so the adapter
names *why* it closes and never a close code.

The table, after the handshake (``Connection.fail_with`` / ``Connection.close_for``):

==========================  =====  ==========================================
what                        code   how
==========================  =====  ==========================================
:class:`ProtocolViolation`  1002   fail; framing, opcode, RSV, close payload
:class:`InvalidUTF8`        1007   fail; inside the offending fragment
:class:`MessageTooBig`      1009   fail; from the declared length, or inflate
:class:`PolicyViolation`    1008   fail; :class:`SlowConsumer` (not reading),
                                   :class:`MessageRateExceeded`
:class:`KeepaliveTimeout`   1011   fail; no Pong to our keepalive Ping
:class:`InternalError`      1011   fail; a handler raised, no details sent
:data:`IDLE_TIMEOUT`        1001   close handshake; no message for too long
:data:`SHUTDOWN`            1001   close handshake; the daemon is stopping
==========================  =====  ==========================================

This module depends on nothing else in the core: :class:`CloseCode` lives here,
next to the table that uses it, and ``close.py`` imports it from here.
"""

from __future__ import annotations

from enum import IntEnum
from typing import ClassVar, NamedTuple


class CloseCode(IntEnum):
    """The registered close codes (RFC 6455 §7.4.1 and the IANA registry)."""

    NORMAL_CLOSURE = 1000
    GOING_AWAY = 1001
    PROTOCOL_ERROR = 1002
    UNSUPPORTED_DATA = 1003
    NO_STATUS_RCVD = 1005  # never on the wire
    ABNORMAL_CLOSURE = 1006  # never on the wire
    INVALID_DATA = 1007
    POLICY_VIOLATION = 1008
    MESSAGE_TOO_BIG = 1009
    MANDATORY_EXTENSION = 1010
    INTERNAL_ERROR = 1011
    SERVICE_RESTART = 1012
    TRY_AGAIN_LATER = 1013
    BAD_GATEWAY = 1014
    TLS_HANDSHAKE = 1015  # never on the wire


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


class SlowConsumer(PolicyViolation):
    """The peer let more than ``write_buffer_max_bytes`` pile up unread: 1008.

    Only the I/O layer can see a transport's buffer, so it reports this to the
    core (``Connection.fail_with(SlowConsumer())``); the code comes from here.
    """

    def __init__(self, message: str = "peer is not reading") -> None:
        super().__init__(message)


class MessageRateExceeded(PolicyViolation):
    """The peer sent messages faster than its endpoint's ``message_rate`` (after ``message_burst``): 1008.

    Only the I/O layer keeps time, so it counts and reports this to the core
    (``Connection.fail_with(MessageRateExceeded())``); the code comes from here.
    """

    def __init__(self, message: str = "message rate exceeded") -> None:
        super().__init__(message)


class KeepaliveTimeout(ProtocolViolation):
    """No Pong answered our keepalive Ping in ``pong_timeout_seconds``: 1011 "keepalive timeout".

    RFC 6455 §5.5.2 obliges the peer to answer a Ping, so silence breaks the
    protocol; 1011 (not 1002) is what websockets sends for it, and what
    clients expect from a server that gave up on a dead link (often a NAT
    that forgot the connection).
    """

    close_code: ClassVar[CloseCode] = CloseCode.INTERNAL_ERROR

    def __init__(self, message: str = "keepalive timeout") -> None:
        super().__init__(message)


class InternalError(Exception):
    """Our side broke (a handler raised): 1011 with the fixed reason "internal error".

    The message never carries the bug's details, which go to the log instead
    (house rule 3: no traceback on the wire).
    """

    close_code: ClassVar[CloseCode] = CloseCode.INTERNAL_ERROR

    def __init__(self) -> None:
        super().__init__("internal error")


#: A failure ``Connection.fail_with`` accepts: its type carries the close code, its message the reason.
FailReason = ProtocolViolation | InternalError


class LocalClose(NamedTuple):
    """A close handshake we start for a reason of our own, with what it puts on the wire."""

    code: CloseCode
    reason: str


#: No message either way for ``idle_timeout_seconds`` (RFC 6455 §7.4.1: 1001, going away).
IDLE_TIMEOUT = LocalClose(CloseCode.GOING_AWAY, "idle timeout")
#: The daemon is shutting down and drains its connections (RFC 6455 §7.4.1: 1001, going away).
SHUTDOWN = LocalClose(CloseCode.GOING_AWAY, "server shutting down")


# --- during the handshake: each maps to an HTTP status ----------------------


class HandshakeError(RemoteError):
    """The upgrade request cannot be accepted; answered with ``status``."""

    status: ClassVar[int] = 400
    headers: ClassVar[tuple[tuple[str, str], ...]] = ()

    def response_headers(self) -> tuple[tuple[str, str], ...]:
        """The headers the refusal is answered with: the class's (a subclass may add its instance's)."""
        return self.headers


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


class TooManyRequests(HandshakeError):
    """A client opens connections faster than ``connection_rate_per_ip`` allows: 429 (RFC 6585 §4).

    ``Retry-After`` says, in whole seconds rounded up, when its next upgrade will be let in.
    """

    status: ClassVar[int] = 429

    def __init__(self, message: str, retry_after_seconds: int) -> None:
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds

    def response_headers(self) -> tuple[tuple[str, str], ...]:
        """``Retry-After`` with this refusal's wait."""
        return (("Retry-After", str(self.retry_after_seconds)),)


class ServiceUnavailable(HandshakeError):
    """A connection limit is reached: 503, asking the client to come back later."""

    status: ClassVar[int] = 503
    headers: ClassVar[tuple[tuple[str, str], ...]] = (("Retry-After", "5"),)


class InvalidResponse(RemoteError):
    """The server's answer to our upgrade request is not a valid 101 (client side)."""
