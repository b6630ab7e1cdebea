"""The in-memory peer: a WebSocket client driven by the test, running our own client handshake and core."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.python.failure import Failure

from wsdaemon.adapter.client import ClientHandshake
from wsdaemon.adapter.switching import SwitchingProtocol
from wsdaemon.core import (
    EOF,
    BytesMessage,
    CloseReceived,
    Connection,
    Limits,
    Pong,
    ResponseHead,
    State,
    TextMessage,
)
from wsdaemon.testing.transport import MemoryTransport

if TYPE_CHECKING:
    from wsdaemon.testing.server import MemoryServer

HOST = "localhost"
#: What the client accepts from the daemon: far more than any test sends.
_CLIENT_LIMITS = Limits().replace(max_message_bytes=2**32, max_frame_bytes=2**32, max_fragments=2**32)


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
        self._handshake: ClientHandshake | None = None
        self._messages: list[str | bytes] = []
        self._outgoing: list[bytes] = []
        self._reading = True
        self._tcp_closed = False
        self._close: tuple[int, str] | None = None
        self._handler: Any = None  # kept from the 101 on: the daemon lets its handler go at the close

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
    def deflate(self) -> bool:
        """Whether the daemon accepted permessage-deflate: messages then go compressed both ways."""
        return self.accepted and self._core is not None and self._core.extension is not None

    @property
    def handler(self) -> Any:
        """The handler the factory built for this connection (None if the upgrade was refused).

        Still there after the close, so a test can see what the handler made of it.
        """
        if self._handler is None:
            self._handler = getattr(self.protocol.upgraded, "handler", None)
        return self._handler

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
        self,
        path: str,
        headers: Sequence[tuple[str, str]],
        subprotocols: Sequence[str],
        origin: str | None,
        deflate: bool,
    ) -> None:
        """Send the upgrade request (built by the client handshake every wsdaemon client shares)."""
        self._handshake = ClientHandshake(
            HOST, path, _CLIENT_LIMITS, subprotocols=subprotocols, origin=origin, deflate=deflate, headers=headers
        )
        self._outgoing.append(self._handshake.data)
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
        assert self._handshake is not None
        answer = self._handshake.receive_head(data)
        if answer is None:
            return
        self.response, rest = answer
        if self.response.status != 101:
            self.body = rest
            return
        # Accept key, subprotocol, extensions: a bad 101 raises InvalidResponse into the test.
        self._core, self.subprotocol = self._handshake.open(self.response)
        self._handler = getattr(self.protocol.upgraded, "handler", None)
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
