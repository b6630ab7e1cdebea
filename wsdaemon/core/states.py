"""A connection's states and its one transition table (RFC 6455 §4-§7).

:class:`~wsdaemon.core.connection.Connection` changes state only through
:func:`next_state`: a pair missing from :data:`TRANSITIONS` is our caller's
mistake (:class:`~wsdaemon.core.errors.LocalProtocolError`), never a silent no-op.
"""

from __future__ import annotations

from enum import Enum

from wsdaemon.core.errors import LocalProtocolError


class Side(Enum):
    """Which end of the connection we are: it decides masking and who closes TCP."""

    SERVER = "server"
    CLIENT = "client"


class State(Enum):
    """Connection states (RFC 6455 §4-§7); the handshake happens before OPEN."""

    OPEN = "open"
    CLOSING = "closing"  # we sent a Close and wait for the peer's
    CLOSED = "closed"  # the close handshake is over, or the connection failed

    # Members are singletons: identity hashing keeps the transition lookup in C.
    __hash__ = object.__hash__


class Input(Enum):
    """What can happen to a connection, from our caller or from the peer."""

    SEND_DATA = "send data"
    SEND_CLOSE = "send close"
    RECEIVE_DATA = "receive data"
    RECEIVE_CLOSE = "receive close"
    FAIL = "fail"
    EOF = "eof"

    __hash__ = object.__hash__


TRANSITIONS: dict[tuple[State, Input], State] = {
    (State.OPEN, Input.SEND_DATA): State.OPEN,
    (State.OPEN, Input.SEND_CLOSE): State.CLOSING,
    (State.OPEN, Input.RECEIVE_DATA): State.OPEN,
    (State.OPEN, Input.RECEIVE_CLOSE): State.CLOSED,
    (State.OPEN, Input.FAIL): State.CLOSED,
    (State.OPEN, Input.EOF): State.CLOSED,
    # RFC 6455 §1.4: after sending a Close we may still receive data.
    (State.CLOSING, Input.RECEIVE_DATA): State.CLOSING,
    (State.CLOSING, Input.RECEIVE_CLOSE): State.CLOSED,
    (State.CLOSING, Input.FAIL): State.CLOSED,
    (State.CLOSING, Input.EOF): State.CLOSED,
    (State.CLOSED, Input.EOF): State.CLOSED,
}


def next_state(state: State, event: Input) -> State:
    """Look up a transition; a pair not in the table is our caller's mistake."""
    try:
        return TRANSITIONS[state, event]
    except KeyError:
        raise LocalProtocolError(f"cannot {event.value} in state {state.value}") from None
