"""In-process microbenchmark of the WebSocket work itself: no sockets, no reactor loop.

It measures what the core and the adapter cost per message, without the
kernel and the reactor that ``run.py`` includes:

* ``echo64``: one masked 64-byte text frame per ``dataReceived``, echoed by the
  ``echo`` handler through the wire protocol (parse, unmask, UTF-8, dispatch,
  frame the answer, write): the figure the README quotes as "in-process".
* ``echo64-core``: the same through the core's ``Connection`` alone.
* ``echo4k``: a 4 KiB binary echo (the general, non-small path).
* ``fragmented``: a 4 KiB text message in 8 fragments, echoed.
* ``shared100``: one shared (broadcast) 64-byte message written to 100
  connections, per connection.

    python bench/inprocess.py [--repeat 7] [--number 100000]

Each figure is the best of ``--repeat`` runs, in µs per message.
"""

from __future__ import annotations

import argparse
import os
import timeit
from typing import Any

from twisted.internet.testing import MemoryReactorClock

from wsdaemon.adapter.protocol import WebSocketWireProtocol
from wsdaemon.core import Connection, Side, TextMessage
from wsdaemon.core.frames import Opcode, SharedMessage
from wsdaemon.core.speedups import apply_mask
from wsdaemon.handlers.echo import EchoProtocol

MASK = b"\x11\x22\x33\x44"


def client_frame(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    """One masked client frame."""
    b0 = (0x80 if fin else 0) | opcode
    n = len(payload)
    if n < 126:
        head = bytes((b0, 0x80 | n))
    elif n < 65536:
        head = bytes((b0, 0x80 | 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((b0, 0x80 | 127)) + n.to_bytes(8, "big")
    return head + MASK + apply_mask(payload, MASK)


class NullTransport:
    """Just enough of a TCP transport for the wire protocol; writes are dropped."""

    def write(self, data: bytes) -> None:
        pass

    def writeSequence(self, data: Any) -> None:
        pass

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        pass

    def unregisterProducer(self) -> None:
        pass

    def pauseProducing(self) -> None:
        pass

    def resumeProducing(self) -> None:
        pass

    def loseConnection(self) -> None:
        pass

    def getPeer(self) -> Any:
        return None


def wire() -> WebSocketWireProtocol:
    """A server-side wire protocol with the echo handler, after negotiation."""
    protocol = WebSocketWireProtocol(EchoProtocol(), Connection(Side.SERVER), MemoryReactorClock())
    protocol.makeConnection(NullTransport())
    protocol.finishNegotiation()
    return protocol


def bench_echo(data: bytes) -> Any:
    protocol = wire()
    received = protocol.dataReceived
    return lambda: received(data)


def bench_core_echo(data: bytes) -> Any:
    conn = Connection(Side.SERVER)

    def once() -> None:
        conn.receive_data(data)
        event = conn.next_event()
        assert isinstance(event, TextMessage)
        conn.send_text(event.data)
        conn.data_to_send()

    return once


def bench_shared(members: int) -> Any:
    protocols = [wire() for _ in range(members)]
    payload = os.urandom(32).hex().encode()

    def once() -> None:
        message = SharedMessage(Opcode.TEXT, payload)
        for protocol in protocols:
            protocol.sendSharedMessage(message)

    return once


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--number", type=int, default=100_000)
    args = parser.parse_args()
    text64 = client_frame(Opcode.TEXT, b"x" * 64)
    binary4k = client_frame(Opcode.BINARY, os.urandom(4096))
    piece = b"y" * 512
    fragmented = b"".join(
        client_frame(Opcode.TEXT if i == 0 else Opcode.CONTINUATION, piece, fin=i == 7) for i in range(8)
    )
    cases = [
        ("echo64", bench_echo(text64), 1),
        ("echo64-core", bench_core_echo(text64), 1),
        ("echo4k", bench_echo(binary4k), 1),
        ("fragmented", bench_echo(fragmented), 1),
        ("shared100", bench_shared(100), 100),
    ]
    for name, func, per_call in cases:
        number = max(1, args.number // per_call)
        best = min(timeit.repeat(func, number=number, repeat=args.repeat))
        print(f"{name:12s} {best / number / per_call * 1e6:7.3f} us/msg")


if __name__ == "__main__":
    main()
