"""How a WebSocket connection ended: what the handler is told and what the log says."""

from __future__ import annotations

from typing import Any

from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.logger import Logger, LogLevel

__all__ = ["WebSocketClosed", "WebSocketLost", "log_closed", "peer_text"]


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


def peer_text(transport: Any) -> str:
    """The peer as ``host:port`` for logs (or whatever the transport reports)."""
    peer = transport.getPeer() if transport is not None else None
    host = getattr(peer, "host", None)
    return f"{host}:{getattr(peer, 'port', '')}" if host is not None else str(peer)


def log_closed(log: Logger, **fields: Any) -> None:
    """Log the one summary line of a closed connection.

    The text is formatted here once, with an f-string, rather than by
    twisted.logger parsing an eleven-field format for every event (the line
    is part of the price of every connection); the fields stay in the event
    for ``--log-format json``.
    """
    f = fields
    summary = (
        f"websocket closed peer={f['peer']} path={f['path']} subprotocol={f['subprotocol']} code={f['code']} "
        f"reason={f['reason']!r} duration={f['duration']:.3f}s bytes_in={f['bytes_in']} bytes_out={f['bytes_out']} "
        f"messages_in={f['messages_in']} messages_out={f['messages_out']}"
    )
    log.emit(LogLevel.info, "{summary}", summary=summary, **fields)
