"""``python -m wsdaemon.client URL``: a wscat-like command-line client.

Each line typed is sent as a text message; each message received is printed
(binary ones as a hex summary). End of input sends a normal close. The exit
status is 0 after a normal close and 1 after any failure, with a one-line
reason on stderr.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, TextIO

from twisted.internet import stdio, task
from twisted.internet.defer import Deferred
from twisted.protocols.basic import LineReceiver
from twisted.python.failure import Failure

from wsdaemon.adapter.client import HandshakeFailed, connect
from wsdaemon.adapter.protocol import WebSocketWireProtocol
from wsdaemon.core import Limits
from wsdaemon.interfaces import WebSocketTransport


class PrintingHandler:
    """Prints what arrives and remembers how the connection ended."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.closed: Deferred[Any] = Deferred()

    def negotiationStarted(self, transport: WebSocketTransport) -> None:
        """Nothing to do before the 101."""

    def negotiationFinished(self) -> None:
        """Tell the person they can type."""
        print("# connected; type a line to send it, end input (Ctrl-D) to close", file=sys.stderr)

    def textMessageReceived(self, message: str) -> None:
        """Print text as it is."""
        print(message, file=self.out, flush=True)

    def bytesMessageReceived(self, data: bytes) -> None:
        """Print a short hex summary of binary data."""
        preview = data[:32].hex(" ")
        more = " ..." if len(data) > 32 else ""
        print(f"<binary {len(data)} bytes: {preview}{more}>", file=self.out, flush=True)

    def pongReceived(self, payload: bytes) -> None:
        """Pongs are not shown."""

    def connectionLost(self, reason: Failure) -> None:
        """Fire ``closed`` with the close code (None if there was none)."""
        self.closed.callback(getattr(reason.value, "code", None))


class InputLines(LineReceiver):
    """Sends each line of standard input as a text message."""

    delimiter = b"\n"

    def __init__(self, wire: WebSocketWireProtocol) -> None:
        self.wire = wire

    def lineReceived(self, line: bytes) -> None:
        """One line, one message (a trailing CR from a terminal is dropped)."""
        self.wire.sendTextMessage(line.rstrip(b"\r").decode("utf-8", "replace"))

    def connectionLost(self, reason: Failure = Failure(Exception())) -> None:
        """End of input: close normally."""
        self.wire.loseConnection(1000)


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The command line: the URL and a few handshake options."""
    parser = argparse.ArgumentParser(
        prog="python -m wsdaemon.client", description="Talk to a WebSocket server from the terminal."
    )
    parser.add_argument("url", help="ws://host:port/path or wss://host:port/path")
    parser.add_argument("--subprotocol", "-s", action="append", default=[], help="offer this subprotocol (repeatable)")
    parser.add_argument("--origin", help="send this Origin header")
    parser.add_argument("--cafile", help="PEM file of the CA to trust for wss:// (default: the system's)")
    parser.add_argument(
        "--max-message-bytes", type=int, default=Limits().max_message_bytes, help="largest message accepted"
    )
    parser.add_argument("--no-deflate", action="store_true", help="do not offer permessage-deflate compression")
    return parser.parse_args(argv)


async def session(reactor: Any, args: argparse.Namespace) -> int:
    """Connect, wire standard input to the connection, and wait for the close."""
    handler = PrintingHandler(sys.stdout)
    limits = Limits(max_message_bytes=args.max_message_bytes, max_frame_bytes=args.max_message_bytes)
    try:
        wire = await connect(
            reactor,
            args.url,
            handler,
            limits=limits,
            subprotocols=tuple(args.subprotocol),
            origin=args.origin,
            cafile=args.cafile,
            deflate=not args.no_deflate,
        )
    except (HandshakeFailed, ValueError) as error:
        print(f"wsdaemon.client: {error}", file=sys.stderr)
        return 1
    except Exception as error:  # noqa: BLE001 - connection refused, DNS, TLS verification...
        print(f"wsdaemon.client: cannot connect to {args.url}: {error}", file=sys.stderr)
        return 1
    stdio.StandardIO(InputLines(wire))
    code = await handler.closed
    if code in (1000, 1001):
        return 0
    print(f"wsdaemon.client: connection closed with code {code}", file=sys.stderr)
    return 1


def main(argv: list[str] | None = None) -> None:
    """Entry point: run :func:`session` on the reactor and exit with its status."""
    args = parse_args(sys.argv[1:] if argv is None else argv)

    def run(reactor: Any) -> Deferred[int]:
        async def wrapped() -> int:
            status = await session(reactor, args)
            if status:
                raise SystemExit(status)
            return status

        return Deferred.fromCoroutine(wrapped())

    task.react(run)


if __name__ == "__main__":
    main()
