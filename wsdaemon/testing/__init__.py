"""In-memory WebSocket clients for testing handlers: no sockets, no running reactor.

In the spirit of ``treq.testing``: a :class:`MemoryClient` talks to a handler
through the daemon's real stack (twisted.web ``Site``, the opening handshake,
the wire adapter and the protocol core); only the TCP connection is replaced
by memory, and time is a ``MemoryReactorClock`` that moves when the test says.

    from wsdaemon.testing import connect

    def test_shout_answers_in_capitals():
        client = connect(ShoutFactory(), "/shout")
        client.send_text("hello")
        assert client.received() == ["HELLO"]

Everything happens synchronously: each call delivers what the client sends,
and every property reads what the daemon wrote so far. A client can stop
reading (:meth:`MemoryClient.pause_reading`), which fills the daemon's write
buffer and pauses the handler's producer as a slow peer would. With
``deflate=True`` the client offers permessage-deflate, and once the daemon
accepts it messages travel compressed both ways without the test noticing.

The pieces live in one module each: :mod:`.transport` (the daemon's end of
the memory connection), :mod:`.server` (the listener stack) and
:mod:`.client` (the peer, which runs the same client handshake as
``python -m wsdaemon.client``).
"""

from __future__ import annotations

from typing import Any

from wsdaemon.interfaces import WebSocketServerFactory
from wsdaemon.testing.client import MemoryClient
from wsdaemon.testing.server import MemoryServer
from wsdaemon.testing.transport import MemoryTransport

__all__ = ["MemoryClient", "MemoryServer", "MemoryTransport", "connect"]


def connect(
    factory: WebSocketServerFactory[Any], path: str = "/ws", *, endpoint: str | None = None, **options: Any
) -> MemoryClient:
    """Connect one in-memory client to ``factory``, served at ``endpoint``.

    Args:
        factory: the handler factory under test.
        path: the request target, e.g. ``"/chat/room1?token=x"``.
        endpoint: the endpoint path (default: ``path`` without its query string).
        options: :class:`MemoryServer` arguments (``limits``, ``subprotocols``,
            ``allowed_origins``, ``reactor``) and :meth:`MemoryServer.connect`
            ones (``headers``, ``subprotocols``, ``origin``, ``peer``, ``deflate``).
    """
    server_options: dict[str, Any] = {
        key: options.pop(key) for key in ("limits", "allowed_origins", "reactor") if key in options
    }
    server_options["subprotocols"] = options.get("subprotocols", ())
    server = MemoryServer({endpoint or path.partition("?")[0]: factory}, **server_options)
    return server.connect(path, **options)
