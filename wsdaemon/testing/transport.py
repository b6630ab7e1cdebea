"""The daemon's end of an in-memory TCP connection, with a TCP transport's flow control."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport


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
