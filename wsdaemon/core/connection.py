"""The WebSocket connection state machine, without I/O (RFC 6455 §5-§7).

Rules for this file:

* Bytes come in through :meth:`Connection.receive_data` and
  :meth:`Connection.receive_eof`; what happened comes out of
  :meth:`Connection.next_event` (one at a time, so answers stay in order) or
  :meth:`Connection.events_received` (all at once); what to write comes out of
  :meth:`Connection.data_to_send`, where an empty ``bytes`` means "close TCP".
* The input methods never raise for anything the peer does: a violation queues
  a Close frame with the error's close code, closes TCP and reports
  :class:`~wsdaemon.core.events.ConnectionFailed`.
* Only misuse by our caller raises (:class:`LocalProtocolError`).
* The state changes only through :func:`~wsdaemon.core.states.next_state`,
  which reads ``TRANSITIONS`` (``states.py``); a pair missing from the table
  is an error, not a silent no-op.
* The core answers Pings, echoes Closes and fails bad input itself; the I/O
  layer decides nothing. When the I/O layer closes for a reason only it can
  see (a timeout, a peer that stopped reading, a handler that raised), it
  names the reason (:meth:`Connection.fail_with`, :meth:`Connection.close_for`)
  and the close code comes from the table in ``errors.py``.
* Every outgoing message, shared ones included (:meth:`Connection.send_shared`),
  goes through :meth:`Connection.data_to_send` in the order it was queued, and
  nothing is queued after our Close (RFC 6455 §5.5.1).
* Incoming data frames become messages in
  :class:`~wsdaemon.core.assembler.MessageAssembler`, which holds the one
  message-size check.
"""

from __future__ import annotations

from collections.abc import Sequence

from wsdaemon.core.assembler import MessageAssembler
from wsdaemon.core.close import CloseCode, is_valid_close_code, parse_close, serialize_close
from wsdaemon.core.deflate import Extension, compressed_size_bound
from wsdaemon.core.errors import FailReason, LocalClose, LocalProtocolError, ProtocolViolation
from wsdaemon.core.events import (
    BytesMessage,
    CloseReceived,
    ConnectionFailed,
    Event,
    Ping,
    Pong,
    TextMessage,
)
from wsdaemon.core.frames import (
    SMALL_FRAME_HEADS,
    FrameChunk,
    FrameParser,
    Opcode,
    SharedMessage,
    encode_message,
    serialize_frame,
)
from wsdaemon.core.limits import Limits
from wsdaemon.core.states import Input, Side, State, next_state
from wsdaemon.core.utf8 import decode_text

#: The "close TCP now" marker in :meth:`Connection.data_to_send`.
EOF = b""


# An Enum member looked up on its class costs a Python-level descriptor call on
# CPython 3.11 (about 50 ns); the methods below compare with these instead.
_OPEN, _CLOSED = State.OPEN, State.CLOSED


class Connection:
    """One WebSocket connection after a successful opening handshake.

    Args:
        side: our end; a server expects masked frames and closes TCP first.
        limits: the size bounds enforced while receiving and sending.
        extensions: what the handshake negotiated: nothing, or permessage-deflate.
    """

    def __init__(self, side: Side, limits: Limits | None = None, extensions: Sequence[Extension] = ()) -> None:
        if len(extensions) > 1:
            raise LocalProtocolError("at most one extension (permessage-deflate) is supported")
        self.side = side
        self.limits = limits = limits or Limits()
        self.extension = extension = extensions[0] if extensions else None
        self.state = _OPEN
        self.close_code: int | None = None
        self.close_reason = ""
        self.failure: Exception | None = None  # what made us fail the connection, for logs
        self.failed = False  # True once fail() ran: the close was not a clean handshake
        # With compression a frame may be a little larger than what it inflates to.
        max_frame_bytes = limits.max_frame_bytes
        self._parser = parser = FrameParser(
            expect_masked=side is Side.SERVER,
            max_frame_bytes=compressed_size_bound(max_frame_bytes) if extension is not None else max_frame_bytes,
            allowed_rsv=extension.rsv if extension is not None else 0,
        )
        self._assembler = MessageAssembler(limits, extension)
        # The small-frame fast path skips the assembler, so it runs only when every
        # small frame (at most 125 bytes) fits the message limit.
        self._next_small_frame = parser.next_small_frame if limits.max_message_bytes >= 125 else _no_small_frame
        self._mask = side is Side.CLIENT
        # Frames encoded once for many connections are valid here only unmasked and
        # without a per-message extension (see send_shared).
        self._shares_frames = extension is None and side is Side.SERVER
        self._events: list[Event] = []
        self._output: list[bytes] = []

    # --- output ---------------------------------------------------------

    def events_received(self) -> list[Event]:
        """Parse everything buffered and take all the events (see :meth:`next_event`)."""
        events = []
        while (event := self.next_event()) is not None:
            events.append(event)
        return events

    def data_to_send(self) -> list[bytes]:
        """Take the bytes to write since the last call; ``EOF`` means close TCP."""
        output, self._output = self._output, []
        return output

    def close_expected(self) -> bool:
        """Whether TCP should close soon, so the caller arms the close timeout."""
        return self.state is not _OPEN

    # --- commands from our caller -----------------------------------------

    def send_text(self, text: str) -> None:
        """Queue a text message.

        Raises:
            LocalProtocolError: the connection is not open.
        """
        self._send_message(Opcode.TEXT, text.encode("utf-8"))

    def send_binary(self, data: bytes) -> None:
        """Queue a binary message.

        Raises:
            LocalProtocolError: the connection is not open.
        """
        self._send_message(Opcode.BINARY, bytes(data))

    def send_shared(self, message: SharedMessage) -> None:
        """Queue a message encoded once for many connections (a broadcast, a replay).

        Its shared frames are queued as they are where they are valid: on a
        server connection (RFC 6455 §5.1: servers never mask) without a
        per-message extension. A permessage-deflate connection (RFC 7692 §6:
        its frames are compressed with its own context) or a client encodes
        the message itself, as :meth:`send_text` or :meth:`send_binary`
        would. Either way the peer gets the same message, in order with
        everything else this connection sends.

        Raises:
            LocalProtocolError: the connection is not open (nothing goes out
                after our Close, RFC 6455 §5.5.1).
        """
        if not self._shares_frames:
            self._send_message(message.opcode, message.payload)
            return
        if self.state is not _OPEN:  # (OPEN, SEND_DATA) -> OPEN; the table judges the rest
            self.state = next_state(self.state, Input.SEND_DATA)
        self._output += message.frames(self.limits.fragment_outgoing_bytes)

    def send_ping(self, payload: bytes = b"") -> None:
        """Queue a Ping; its payload is at most 125 bytes (RFC 6455 §5.5).

        Raises:
            LocalProtocolError: the connection is not open, or the payload is too long.
        """
        self._send_control(Opcode.PING, payload)

    def send_pong(self, payload: bytes = b"") -> None:
        """Queue an unsolicited Pong, a one-way heartbeat (RFC 6455 §5.5.3).

        Raises:
            LocalProtocolError: the connection is not open, or the payload is too long.
        """
        self._send_control(Opcode.PONG, payload)

    def send_close(self, code: int = CloseCode.NORMAL_CLOSURE, reason: str = "") -> None:
        """Start the closing handshake (RFC 6455 §7.1.2).

        Raises:
            LocalProtocolError: the code may not be sent, or a Close was already sent.
        """
        if not is_valid_close_code(code):
            raise LocalProtocolError(f"close code {code} may not be sent")
        self.state = next_state(self.state, Input.SEND_CLOSE)
        payload = serialize_close(code, reason)
        self.close_code, self.close_reason = code, payload[2:].decode("utf-8")  # what the peer gets
        self._output.extend(serialize_frame(Opcode.CLOSE, payload, mask=self._mask))

    def close_for(self, why: LocalClose) -> None:
        """Start the closing handshake for a reason of our own, e.g. ``IDLE_TIMEOUT`` or ``SHUTDOWN``.

        The code and reason come from ``why`` (the table in ``errors.py``), so
        the caller names the reason, never a close code. Once a Close was sent
        or received this does nothing: the closing handshake is already under
        way, and a timeout racing it stays harmless.
        """
        if self.state is _OPEN:
            self.send_close(why.code, why.reason)

    def fail_with(self, error: FailReason) -> None:
        """Fail the connection for ``error``, with the close code its type carries (``errors.py``).

        For what the core finds itself (a bad frame) and for what only the
        I/O layer sees: :class:`~wsdaemon.core.errors.SlowConsumer`,
        :class:`~wsdaemon.core.errors.KeepaliveTimeout`,
        :class:`~wsdaemon.core.errors.InternalError` (a handler raised). The
        reason on the wire is the error's message: our own words, never the
        details of a bug. Like :meth:`fail`, it does nothing once closed.
        """
        self.fail(error.close_code, str(error), error)

    def fail(self, code: int, reason: str = "", error: Exception | None = None) -> None:
        """Fail the connection (RFC 6455 §7.1.7): send a Close if we still may, then close TCP.

        Failing a connection that is already closed does nothing, so timeouts
        and errors racing each other stay harmless. Prefer :meth:`fail_with`,
        whose error type carries the code.
        """
        if self.state is _CLOSED:
            return
        payload = serialize_close(code, reason)
        reason = payload[2:].decode("utf-8")  # a reason cut to fit the frame, as the peer gets it
        if self.state is _OPEN:
            self._output.extend(serialize_frame(Opcode.CLOSE, payload, mask=self._mask))
        self.state = next_state(self.state, Input.FAIL)
        self.close_code, self.close_reason, self.failure = code, reason, error
        self.failed = True
        self._assembler.reset()
        self._output.append(EOF)
        self._events.append(ConnectionFailed(code, reason))

    # --- input from the peer ---------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Buffer bytes from the peer; they are parsed by :meth:`next_event`."""
        if self.state is not _CLOSED and data:
            self._parser.feed(data)

    def next_event(self) -> Event | None:
        """Parse just far enough to produce the next event; None when more bytes are needed.

        Parsing stops after each event, so whatever the caller sends in answer
        (an echo, say) is queued before anything a later, bad frame causes: a
        peer's earlier messages are answered in order even if it then breaks
        the protocol. Never raises for what the peer sent.
        """
        events = self._events
        if events:
            return events.pop(0)
        parser = self._parser
        if not parser.buffered():
            return None  # nothing to parse: the usual answer to the last call after a read
        try:
            if self._assembler.opcode is None and self.state is _OPEN:
                small = self._next_small_frame()  # the common case, without per-chunk objects
                if small is not None:
                    opcode, payload = small
                    if opcode != _TEXT:
                        return BytesMessage(payload)
                    try:
                        return TextMessage(payload.decode("utf-8"))
                    except UnicodeDecodeError:
                        return TextMessage(decode_text(payload))  # raises InvalidUTF8 with the close reason
            while not events and self.state is not _CLOSED:
                chunk = parser.next_chunk()
                if chunk is None:
                    break
                if chunk.header.opcode >= 0x8:
                    self._receive_control(chunk.header.opcode, chunk.payload)
                else:
                    self._receive_data_chunk(chunk)
        except ProtocolViolation as error:
            self.fail_with(error)
        return events.pop(0) if events else None

    def receive_eof(self) -> None:
        """The TCP connection ended; without a completed close handshake that is 1006."""
        if self.state is not _CLOSED:
            self.close_code, self.close_reason = CloseCode.ABNORMAL_CLOSURE, "connection lost without a close frame"
            self._assembler.reset()
        self.state = next_state(self.state, Input.EOF)

    # --- internals ----------------------------------------------------------

    def _send_message(self, opcode: int, payload: bytes) -> None:
        """Frame a message, split at ``fragment_outgoing_bytes`` (RFC 6455 §5.4)."""
        if self.state is not _OPEN:  # (OPEN, SEND_DATA) -> OPEN; the table judges the rest
            self.state = next_state(self.state, Input.SEND_DATA)
        rsv = 0
        if self.extension is not None:
            rsv, payload = self.extension.encode(payload)
        if len(payload) < 126 and not self._mask:
            # The fast path: a small server frame is two header bytes and the payload.
            self._output.append(SMALL_FRAME_HEADS[0x80 | rsv | opcode][len(payload)] + payload)
            return
        self._output += encode_message(opcode, payload, self.limits.fragment_outgoing_bytes, rsv=rsv, mask=self._mask)

    def _send_control(self, opcode: Opcode, payload: bytes) -> None:
        """Queue a Ping or Pong; control frames are never fragmented (RFC 6455 §5.5).

        Raises:
            LocalProtocolError: the connection is not open, or the payload is over 125 bytes.
        """
        if len(payload) > 125:
            raise LocalProtocolError("control frame payloads are at most 125 bytes")
        self.state = next_state(self.state, Input.SEND_DATA)
        self._output.extend(serialize_frame(opcode, bytes(payload), mask=self._mask))

    def _receive_control(self, opcode: int, payload: bytes) -> None:
        """Ping, Pong and Close may arrive between fragments (RFC 6455 §5.4)."""
        if opcode == Opcode.PING:
            self._events.append(Ping(payload))
            if self.state is _OPEN:
                self._output.extend(serialize_frame(Opcode.PONG, payload, mask=self._mask))
        elif opcode == Opcode.PONG:
            self._events.append(Pong(payload))
        else:
            self._receive_close(payload)

    def _receive_close(self, payload: bytes) -> None:
        """Answer a Close with the same code, then (server) close TCP (RFC 6455 §5.5.1).

        RFC 6455 §7.1.5: the connection's close code is the one in the first
        Close *received*, also when we sent ours first.
        """
        code, reason = parse_close(payload)
        was_open = self.state is _OPEN
        self.state = next_state(self.state, Input.RECEIVE_CLOSE)
        self._assembler.reset()
        self.close_code, self.close_reason = code, reason
        if was_open:
            echo = CloseCode.NORMAL_CLOSURE if code == CloseCode.NO_STATUS_RCVD else code
            self._output.extend(serialize_frame(Opcode.CLOSE, serialize_close(echo), mask=self._mask))
        if self.side is Side.SERVER:
            self._output.append(EOF)
        self._events.append(CloseReceived(code, reason))

    def _receive_data_chunk(self, chunk: FrameChunk) -> None:
        """Hand a piece of a data frame to the assembler; a finished message becomes an event.

        Raises:
            ProtocolViolation: the frame breaks the fragmentation rules, or the
                message its limits (see :class:`MessageAssembler`).
        """
        header = chunk.header
        if self.state is not _OPEN:  # (OPEN, RECEIVE_DATA) -> OPEN; the table judges the rest
            self.state = next_state(self.state, Input.RECEIVE_DATA)
        assembler = self._assembler
        if chunk.first:
            assembler.start_frame(header.opcode, header.length, header.rsv)
        message = assembler.add(chunk.payload, chunk.last and header.fin)
        if message is not None:
            self._events.append(message)


_TEXT = int(Opcode.TEXT)


def _no_small_frame() -> None:
    """Stands in for the small-frame fast path when ``max_message_bytes`` is under 125 bytes."""
