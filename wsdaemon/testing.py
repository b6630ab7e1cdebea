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
buffer and pauses the handler's producer as a slow peer would.
"""

from __future__ import annotations

import dataclasses
import itertools
import types
from collections.abc import Mapping, Sequence
from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure

from wsdaemon.adapter.switching import SwitchingProtocol
from wsdaemon.config import EndpointConfig, default_config
from wsdaemon.core import (
    EOF,
    BytesMessage,
    CloseReceived,
    Connection,
    Limits,
    Pong,
    ResponseHead,
    Side,
    State,
    TextMessage,
)
from wsdaemon.core.handshake import ClientRequest, build_request, check_response
from wsdaemon.core.http import find_head_end, parse_response_head
from wsdaemon.interfaces import WebSocketServerFactory
from wsdaemon.web.site import build_factory

__all__ = ["MemoryClient", "MemoryServer", "MemoryTransport", "connect"]

HOST = "localhost"
#: What the client accepts from the daemon: far more than any test sends.
_CLIENT_LIMITS = Limits().replace(max_message_bytes=2**32, max_frame_bytes=2**32, max_fragments=2**32)


class MemoryTransport(StringTransport):
    """The daemon's end of an in-memory TCP connection.

    Like a TCP transport, it pauses a registered streaming producer once more
    than ``bufferSize`` bytes wait unread (the adapter sets it to
    ``write_buffer_high_bytes``) and resumes it when the client has read them.
    """

    bufferSize = 64 * 1024

    def __init__(self, host: IPv4Address, peer: IPv4Address) -> None:
        super().__init__(host, peer, lenient=True)  # type: ignore[no-untyped-call]  # super(): mypy#16653
        self.producer_paused = False

    def write(self, data: bytes) -> None:
        """Buffer ``data`` for the client."""
        super().write(data)  # type: ignore[no-untyped-call]  # super(): mypy#16653
        self._maybe_pause()

    def writeSequence(self, data: Sequence[bytes]) -> None:
        """Buffer each piece for the client."""
        super().writeSequence(data)  # type: ignore[no-untyped-call]  # super(): mypy#16653
        self._maybe_pause()

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        """A new producer starts unpaused."""
        super().registerProducer(producer, streaming)  # type: ignore[no-untyped-call]  # super(): mypy#16653
        self.producer_paused = False

    def read(self) -> bytes:
        """What the client reads: everything buffered; a paused producer is resumed."""
        data: bytes = self.value()
        self.clear()
        if self.producer_paused and self.producer is not None:
            self.producer_paused = False
            self.producer.resumeProducing()
        return data

    def _maybe_pause(self) -> None:
        full = self.io.tell() > self.bufferSize
        if full and self.producer is not None and self.streaming and not self.producer_paused:
            self.producer_paused = True
            self.producer.pauseProducing()


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
    ) -> MemoryClient:
        """Open a connection from ``peer`` and send an upgrade for ``path``; check :attr:`MemoryClient.accepted`."""
        address = IPv4Address("TCP", peer, next(self._ports))
        protocol = self.factory.buildProtocol(address)
        if protocol is None:
            raise ConnectionRefusedError("the listener refused the connection (max_connections)")
        transport = MemoryTransport(IPv4Address("TCP", "127.0.0.1", 8080), address)
        protocol.makeConnection(transport)
        client = MemoryClient(self, protocol, transport)
        self.clients.append(client)
        client._upgrade(path, headers, subprotocols, origin)
        return client

    def advance(self, seconds: float) -> None:
        """Move the clock forward (deadlines, handler timers), then deliver what happened."""
        self.reactor.advance(seconds)
        self.pump()

    def pump(self) -> None:
        """Deliver everything every client sent or has to read, until nothing moves.

        Every client that is not paused reads promptly, as peers on a fast
        network would; clients call this after each of their actions.
        """
        clients = self.clients
        while True:
            moved = [client._pump_once() for client in clients]  # every client gets its turn each round
            if not any(moved):
                break
        self.clients = [client for client in clients if not client._tcp_closed]


class MemoryClient:
    """One client connection; see the module docstring. Messages are ``str`` (text) or ``bytes``."""

    def __init__(self, server: MemoryServer, protocol: SwitchingProtocol, transport: MemoryTransport) -> None:
        self.server = server
        self.protocol = protocol
        self.transport = transport
        self.response: ResponseHead | None = None
        self.body = b""
        self.subprotocol: str | None = None
        self.pongs: list[bytes] = []
        self._core: Connection | None = None
        self._request: ClientRequest | None = None
        self._buffer = b""
        self._messages: list[str | bytes] = []
        self._outgoing: list[bytes] = []
        self._reading = True
        self._tcp_closed = False
        self._close: tuple[int, str] | None = None

    @property
    def status(self) -> int:
        """The HTTP status of the answer to the upgrade (101 when accepted)."""
        self._pump()
        if self.response is None:
            raise AssertionError("the daemon has not answered the upgrade request")
        return self.response.status

    @property
    def accepted(self) -> bool:
        """Whether the upgrade succeeded (a 101 with the right accept key)."""
        return self.status == 101 and self._core is not None

    @property
    def handler(self) -> Any:
        """The handler the factory built for this connection (None if the upgrade was refused)."""
        upgraded = self.protocol.upgraded
        return getattr(upgraded, "handler", None)

    def send_text(self, text: str) -> None:
        """Send a text message."""
        self._command().send_text(text)
        self._pump()

    def send_bytes(self, data: bytes) -> None:
        """Send a binary message."""
        self._command().send_binary(data)
        self._pump()

    def ping(self, payload: bytes = b"") -> None:
        """Send a Ping; the answer appears in :attr:`pongs`."""
        self._command().send_ping(payload)
        self._pump()

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Start the closing handshake; :attr:`close_code` is the code the daemon echoes."""
        core = self._command()
        if core.state is State.OPEN:
            core.send_close(code, reason)
        self._pump()

    def send_raw(self, data: bytes) -> None:
        """Send bytes as they are: a handwritten frame, or garbage."""
        self._outgoing.append(data)
        self._pump()

    def disconnect(self) -> None:
        """Drop TCP without a Close (the daemon sees 1006)."""
        self._pump()
        if not self._tcp_closed:
            self._tcp_closed = True
            self.protocol.connectionLost(Failure(ConnectionLost("the client went away")))

    def received(self) -> list[str | bytes]:
        """The messages received since the last call, in order."""
        self._pump()
        messages, self._messages = self._messages, []
        return messages

    def pause_reading(self) -> None:
        """Stop reading, like a slow peer: the daemon's write buffer fills up."""
        self._reading = False

    def resume_reading(self) -> None:
        """Read again (everything waiting arrives at once)."""
        self._reading = True
        self._pump()

    def advance(self, seconds: float) -> None:
        """Move the server's clock forward, then deliver what happened."""
        self.server.advance(seconds)

    @property
    def close_code(self) -> int | None:
        """The code in the daemon's Close frame, or None if it sent none."""
        self._pump()
        return None if self._close is None else self._close[0]

    @property
    def close_reason(self) -> str | None:
        """The reason in the daemon's Close frame, or None if it sent none."""
        self._pump()
        return None if self._close is None else self._close[1]

    @property
    def closed(self) -> bool:
        """Whether the TCP connection is closed."""
        self._pump()
        return self._tcp_closed

    def _upgrade(
        self, path: str, headers: Sequence[tuple[str, str]], subprotocols: Sequence[str], origin: str | None
    ) -> None:
        self._request = build_request(HOST, path, tuple(subprotocols), origin)
        extra = "".join(f"{name}: {value}\r\n" for name, value in headers).encode("latin-1")
        self._outgoing.append(self._request.data[:-2] + extra + b"\r\n")  # before the blank line
        self._pump()

    def _command(self) -> Connection:
        if not self.accepted or self._core is None:
            raise AssertionError(f"the upgrade was refused with {self.status}; there is no WebSocket to use")
        return self._core

    def _pump(self) -> None:
        """Move bytes both ways, for every client of the server, until nothing changes."""
        self.server.pump()

    def _pump_once(self) -> bool:
        """Make one step: send, deliver an abort, read, or deliver a close; False if there was none."""
        if self._core is not None:
            self._send_core_output()
        transport = self.transport
        if self._outgoing and not self._tcp_closed and transport.producerState != "paused":
            data, self._outgoing = b"".join(self._outgoing), []
            self.protocol.dataReceived(data)
            return True
        if transport.disconnected and not self._tcp_closed:  # aborted: unread data is lost
            transport.clear()
            self._tcp_closed = True
            self.protocol.connectionLost(Failure(ConnectionLost("connection aborted")))
            return True
        if self._reading and transport.io.tell():
            self._receive(transport.read())
            return True
        if transport.disconnecting and not self._tcp_closed and not transport.io.tell():
            self._tcp_closed = True
            self.protocol.connectionLost(Failure(ConnectionDone("the daemon closed the connection")))
            return True
        return False

    def _receive(self, data: bytes) -> None:
        if self._core is None:
            self._receive_http(data)
            return
        self._core.receive_data(data)
        self._take_events()

    def _receive_http(self, data: bytes) -> None:
        """The answer to the upgrade: a 101 (then frames), or a refusal with a body."""
        if self.response is not None:  # after a refusal: more body
            self.body += data
            return
        self._buffer += data
        end = find_head_end(self._buffer)
        if end < 0:
            return
        self.response = parse_response_head(self._buffer[:end])
        rest, self._buffer = self._buffer[end:], b""
        if self.response.status != 101:
            self.body = rest
            return
        assert self._request is not None
        self.subprotocol = check_response(self.response, self._request)  # accept key, subprotocol...
        self._core = Connection(Side.CLIENT, _CLIENT_LIMITS)
        if rest:
            self._receive(rest)

    def _take_events(self) -> None:
        core = self._core
        assert core is not None
        for event in core.events_received():
            if isinstance(event, (TextMessage, BytesMessage)):
                self._messages.append(event.data)
            elif isinstance(event, Pong):
                self.pongs.append(event.payload)
            elif isinstance(event, CloseReceived):
                self._close = (event.code, event.reason)
        self._send_core_output()

    def _send_core_output(self) -> None:
        core = self._core
        assert core is not None
        chunks = core.data_to_send()
        eof = bool(chunks) and chunks[-1] == EOF
        self._outgoing.extend(chunk for chunk in chunks if chunk)
        if eof and not self._tcp_closed:  # the client's core failed the connection
            self._pump_once()
            self._tcp_closed = True
            self.protocol.connectionLost(Failure(ConnectionDone("the client closed the connection")))


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
            ones (``headers``, ``subprotocols``, ``origin``, ``peer``).
    """
    server_options: dict[str, Any] = {
        key: options.pop(key) for key in ("limits", "allowed_origins", "reactor") if key in options
    }
    server_options["subprotocols"] = options.get("subprotocols", ())
    server = MemoryServer({endpoint or path.partition("?")[0]: factory}, **server_options)
    return server.connect(path, **options)
