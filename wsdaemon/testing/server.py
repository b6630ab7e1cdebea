"""The daemon's listener stack in memory: the real ``Site`` and endpoints, clients connected by memory."""

from __future__ import annotations

import dataclasses
import itertools
import types
from collections.abc import Mapping, Sequence
from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.testing import MemoryReactorClock

from wsdaemon.config import EndpointConfig, default_config
from wsdaemon.core import Limits
from wsdaemon.interfaces import WebSocketServerFactory
from wsdaemon.testing.client import MemoryClient
from wsdaemon.testing.transport import MemoryTransport
from wsdaemon.web.site import build_factory


class MemoryServer:
    """The daemon's listener stack in memory, serving ``endpoints`` (path → handler factory).

    Args:
        endpoints: handler factories by endpoint path, e.g. ``{"/chat": factory}``.
        limits: the endpoints' limits (default: the daemon's defaults).
        subprotocols: what every endpoint offers, most preferred first.
        allowed_origins: as in the config; ``()`` allows same-origin and Origin-less clients.
        reactor: the clock the stack runs on; give handler factories the same one in their ``HandlerContext``
            (default: a fresh ``MemoryReactorClock``).
    """

    def __init__(
        self,
        endpoints: Mapping[str, WebSocketServerFactory[Any]],
        *,
        limits: Limits | None = None,
        subprotocols: Sequence[str] = (),
        allowed_origins: Sequence[str] = (),
        reactor: Any = None,
    ) -> None:
        self.reactor: Any = reactor if reactor is not None else MemoryReactorClock()
        limits = limits or Limits()
        configs = tuple(
            EndpointConfig(
                path, "(testing)", types.MappingProxyType({}), tuple(subprotocols), tuple(allowed_origins), limits
            )
            for path in endpoints
        )
        config = dataclasses.replace(default_config(), listeners=(), limits=limits, endpoints=configs, demo_page=False)
        self.factory = build_factory(config, dict(endpoints), self.reactor)
        self.clients: list[MemoryClient] = []
        self._ports = itertools.count(50000)

    def connect(
        self,
        path: str,
        *,
        headers: Sequence[tuple[str, str]] = (),
        subprotocols: Sequence[str] = (),
        origin: str | None = None,
        peer: str = "127.0.0.1",
        deflate: bool = False,
    ) -> MemoryClient:
        """Open a connection from ``peer`` and send an upgrade request for ``path`` (query string allowed).

        The client is returned whatever the answer: check :attr:`MemoryClient.accepted`.

        Args:
            path: the request target, e.g. ``"/chat/room1?token=x"``.
            headers: extra request headers, e.g. ``[("Authorization", "Bearer x")]``.
            subprotocols: what the client offers, most preferred first.
            origin: the ``Origin`` header, or None to send none (as non-browser clients do).
            peer: the client's IPv4 address, as the handler and the connection limits see it.
            deflate: offer permessage-deflate; when the daemon accepts it
                (:attr:`MemoryClient.deflate`), messages go compressed both ways.

        Raises:
            ConnectionRefusedError: the listener refused the TCP connection (``max_connections``).
        """
        address = IPv4Address("TCP", peer, next(self._ports))
        protocol = self.factory.buildProtocol(address)
        if protocol is None:
            raise ConnectionRefusedError("the listener refused the connection (max_connections)")
        transport = MemoryTransport(IPv4Address("TCP", "127.0.0.1", 8080), address)
        protocol.makeConnection(transport)
        client = MemoryClient(self, protocol, transport)
        self.clients.append(client)
        client._upgrade(path, headers, subprotocols, origin, deflate)
        return client

    def advance(self, seconds: float) -> None:
        """Move the clock forward (deadlines, handler timers), then deliver what happened."""
        self.reactor.advance(seconds)
        self.pump()

    def pump(self) -> None:
        """Deliver everything every client sent or has to read, until nothing moves.

        Every client that is not paused reads promptly, as peers on a fast
        network would; clients call this after each of their actions. What
        waits for the end of the reactor's turn (a ``callLater(0)``: the
        daemon writes broadcasts then) runs too; later timers wait for
        :meth:`advance`.
        """
        clients = self.clients
        while True:
            moved = [client._pump_once() for client in clients]  # every client gets its turn each round
            if not any(moved) and not self._end_turn():
                break
        self.clients = [client for client in clients if not client._tcp_closed]

    def _end_turn(self) -> bool:
        """Run what waits for the end of the reactor's turn (a ``callLater(0)``: a broadcast's writes); False if none."""
        now = self.reactor.seconds()
        if not any(call.getTime() <= now for call in self.reactor.getDelayedCalls()):
            return False
        self.reactor.advance(0)
        return True
