"""Reassembling data frames into messages, under the message limits (RFC 6455 §5.4, §5.6; RFC 7692 §6).

Rules for this file (the frame parser's counterpart, as wsproto keeps its
decoder apart from its connection):

* One message at a time. A continuation frame continues the open message; a
  text or binary frame while one is open, or a continuation with none open, is
  a :class:`~wsdaemon.core.errors.ProtocolViolation` (RFC 6455 §5.4).
* A message's size is checked in exactly one place,
  :meth:`MessageAssembler.start_frame`, on each frame's *declared* length,
  before any of its payload is kept (house rule 6). A compressed message may
  take :func:`~wsdaemon.core.deflate.compressed_size_bound` bytes on the wire;
  what it inflates to is held to ``max_message_bytes`` itself by the
  extension's bounded inflate, as it inflates.
* Text is validated as it arrives, so invalid UTF-8 fails inside the piece
  that carries it (Autobahn 6.4.*), not at the end of the message.
* The assembler knows nothing of connection state or output: it raises, and
  the connection turns the error into its Close (``Connection.fail_with``).
"""

from __future__ import annotations

from wsdaemon.core.deflate import Extension, compressed_size_bound
from wsdaemon.core.errors import MessageTooBig, ProtocolViolation
from wsdaemon.core.events import BytesMessage, TextMessage
from wsdaemon.core.frames import Opcode
from wsdaemon.core.limits import Limits
from wsdaemon.core.utf8 import Utf8Validator, decode_text

_CONTINUATION = int(Opcode.CONTINUATION)
_TEXT = int(Opcode.TEXT)


class MessageAssembler:
    """The message being received on one connection, frame by frame.

    Args:
        limits: ``max_message_bytes`` and ``max_fragments`` are enforced here.
        extension: the negotiated per-message extension (permessage-deflate),
            which inflates messages whose first frame has RSV1 set; or None.
    """

    __slots__ = (
        "_compressed",
        "_extension",
        "_fed",
        "_frames",
        "_inflated",
        "_parts",
        "_text",
        "_wire_bytes",
        "_wire_limit",
        "max_fragments",
        "max_message_bytes",
        "opcode",
    )

    def __init__(self, limits: Limits, extension: Extension | None = None) -> None:
        self.max_message_bytes = limits.max_message_bytes
        self.max_fragments = limits.max_fragments
        # With compression a frame may be a little larger than what it inflates to.
        self._wire_limit = compressed_size_bound(limits.max_message_bytes) if extension is not None else 0
        self._extension = extension
        #: The opcode of the message being received (text or binary), or None between messages.
        self.opcode: int | None = None
        self._parts: list[bytes] = []  # a binary message's pieces
        self._text = Utf8Validator()  # a text message's pieces, validated as they arrive
        self._fed = False  # whether any piece of the text message went to the validator
        self._wire_bytes = 0  # declared lengths of the message's frames so far
        self._frames = 0
        self._compressed = False  # the message had RSV1 on its first frame (RFC 7692 §6)
        self._inflated = 0  # bytes it inflated to so far

    def start_frame(self, opcode: int, length: int, rsv: int = 0) -> None:
        """Check a data frame's header before any of its payload is kept: order, count and size.

        This is the one message-size check (see the rules above).

        Raises:
            ProtocolViolation: a continuation without a message, or a new
                message inside a fragmented one (RFC 6455 §5.4).
            MessageTooBig: over ``max_message_bytes`` (on the wire, for a
                compressed message: its bound) or over ``max_fragments`` frames.
        """
        if opcode == _CONTINUATION:
            if self.opcode is None:
                raise ProtocolViolation("continuation frame without a message to continue")
        elif self.opcode is not None:
            raise ProtocolViolation("new data frame inside a fragmented message")
        else:
            self.opcode, self._wire_bytes, self._frames, self._fed = opcode, 0, 0, False
            self._compressed, self._inflated = bool(rsv), 0  # the parser lets RSV1 through only with deflate
        self._frames += 1
        self._wire_bytes += length
        if self._wire_bytes > (self._wire_limit if self._compressed else self.max_message_bytes):
            raise MessageTooBig(f"message over the limit of {self.max_message_bytes} bytes")
        if self._frames > self.max_fragments:
            raise MessageTooBig(f"message in more than {self.max_fragments} frames")

    def add(self, payload: bytes, final: bool) -> TextMessage | BytesMessage | None:
        """Add a piece of the current frame's payload; ``final`` ends the message and returns it.

        Raises:
            InvalidUTF8: the text so far is not valid UTF-8, or ends inside a character.
            MessageTooBig: a compressed message inflates past ``max_message_bytes``.
            ProtocolViolation: a compressed message is not a valid deflate stream.
        """
        if self._compressed:
            payload = self._inflate(payload, final)
        if self.opcode == _TEXT:
            if not final:
                self._text.feed(payload)
                self._fed = True
                return None
            self.opcode = None
            if not self._fed:  # the whole message in one piece: decoded at C speed
                return TextMessage(decode_text(payload))
            self._text.feed(payload)
            return TextMessage(self._text.finish())
        if not final:
            if payload:
                self._parts.append(payload)
            return None
        self.opcode = None
        parts, self._parts = self._parts, []
        if not parts:
            return BytesMessage(payload)  # one piece: no join, no copy
        parts.append(payload)
        return BytesMessage(b"".join(parts))

    def reset(self) -> None:
        """Drop a half-received message (the connection closed or failed): its memory goes at once."""
        self.opcode = None
        self._parts = []
        self._text = Utf8Validator()

    def _inflate(self, data: bytes, final: bool) -> bytes:
        """Decompress a piece within what is left of ``max_message_bytes`` (bomb-safe, RFC 7692 §7.2.2)."""
        extension = self._extension
        assert extension is not None  # only a negotiated extension lets RSV1 through
        out = extension.decode(data, self.max_message_bytes - self._inflated)
        self._inflated += len(out)
        if final:
            tail = extension.decode_end(self.max_message_bytes - self._inflated)
            self._inflated += len(tail)
            out += tail
        return out
