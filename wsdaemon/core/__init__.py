"""The sans-I/O WebSocket core: bytes in, events and bytes out; stdlib only."""

from wsdaemon.core.close import CloseCode
from wsdaemon.core.connection import EOF, Connection
from wsdaemon.core.errors import (
    IDLE_TIMEOUT,
    SHUTDOWN,
    BadRequest,
    ForbiddenOrigin,
    HandshakeError,
    InternalError,
    InvalidResponse,
    InvalidUTF8,
    KeepaliveTimeout,
    LocalClose,
    LocalProtocolError,
    MessageRateExceeded,
    MessageTooBig,
    PolicyViolation,
    ProtocolViolation,
    RemoteError,
    ServiceUnavailable,
    SlowConsumer,
    TooManyRequests,
    UnsupportedVersion,
    UpgradeRequired,
)
from wsdaemon.core.events import BytesMessage, CloseReceived, ConnectionFailed, Event, Ping, Pong, TextMessage
from wsdaemon.core.frames import SharedMessage
from wsdaemon.core.handshake import Accepted, EndpointPolicy, accept_key, accept_request, build_request, check_response
from wsdaemon.core.http import RequestHead, ResponseHead
from wsdaemon.core.limits import Limits
from wsdaemon.core.states import Side, State

__all__ = [
    "EOF",
    "IDLE_TIMEOUT",
    "SHUTDOWN",
    "Accepted",
    "BadRequest",
    "BytesMessage",
    "CloseCode",
    "CloseReceived",
    "Connection",
    "ConnectionFailed",
    "EndpointPolicy",
    "Event",
    "ForbiddenOrigin",
    "HandshakeError",
    "InternalError",
    "InvalidResponse",
    "InvalidUTF8",
    "KeepaliveTimeout",
    "Limits",
    "LocalClose",
    "LocalProtocolError",
    "MessageRateExceeded",
    "MessageTooBig",
    "Ping",
    "PolicyViolation",
    "Pong",
    "ProtocolViolation",
    "RemoteError",
    "RequestHead",
    "ResponseHead",
    "ServiceUnavailable",
    "SharedMessage",
    "Side",
    "SlowConsumer",
    "State",
    "TextMessage",
    "TooManyRequests",
    "UnsupportedVersion",
    "UpgradeRequired",
    "accept_key",
    "accept_request",
    "build_request",
    "check_response",
]
