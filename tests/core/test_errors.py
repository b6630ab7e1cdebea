"""Tests for wsdaemon.core.errors: the one table from failure (or local reason) to its wire answer (DESIGN §2.4)."""

from __future__ import annotations

import pytest

from wsdaemon.core import errors
from wsdaemon.core.close import CloseCode as ReExportedCloseCode
from wsdaemon.core.errors import (
    IDLE_TIMEOUT,
    SHUTDOWN,
    CloseCode,
    InternalError,
    InvalidUTF8,
    KeepaliveTimeout,
    LocalClose,
    MessageTooBig,
    PolicyViolation,
    ProtocolViolation,
    RemoteError,
    SlowConsumer,
)


@pytest.mark.parametrize(
    ("error", "code", "reason"),
    [
        (ProtocolViolation("reserved opcode 0x3"), 1002, "reserved opcode 0x3"),
        (InvalidUTF8("text message is not valid UTF-8"), 1007, "text message is not valid UTF-8"),
        (MessageTooBig("message over the limit"), 1009, "message over the limit"),
        (PolicyViolation("no"), 1008, "no"),
        (SlowConsumer(), 1008, "peer is not reading"),
        (KeepaliveTimeout(), 1011, "keepalive timeout"),
        (InternalError(), 1011, "internal error"),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, Exception) else str(value),
)
def test_each_failure_carries_its_close_code_and_reason(error: errors.FailReason, code: int, reason: str) -> None:
    """The close code is the type's; the reason on the wire is the message (our own words)."""
    assert (error.close_code, str(error)) == (code, reason)


def test_internal_error_cannot_carry_details() -> None:
    """InternalError takes no message: a bug's details go to the log, never to the wire (house rule 3)."""
    with pytest.raises(TypeError):
        InternalError("secret token")  # type: ignore[call-arg]
    assert not isinstance(InternalError(), RemoteError)


def test_peer_caused_failures_are_remote_errors() -> None:
    """A slow consumer and a missing Pong are the peer's doing, like a framing error."""
    assert issubclass(SlowConsumer, PolicyViolation) and issubclass(KeepaliveTimeout, RemoteError)


@pytest.mark.parametrize(
    ("why", "code", "reason"),
    [(IDLE_TIMEOUT, 1001, "idle timeout"), (SHUTDOWN, 1001, "server shutting down")],
    ids=["idle", "shutdown"],
)
def test_local_closes_carry_going_away(why: LocalClose, code: int, reason: str) -> None:
    """The closes we start for our own reasons are 1001 (going away), each with its reason."""
    assert (why.code, why.reason) == (code, reason)


def test_close_code_is_defined_once() -> None:
    """close.py re-exports the one CloseCode from errors.py (no second enum, no import circle)."""
    assert ReExportedCloseCode is CloseCode
