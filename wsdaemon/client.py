"""``python -m wsdaemon.client URL``: a wscat-like command-line client.

Each line of standard input is sent as a text message; each message received
is printed (binary ones as a hex summary). At the end of input the client
keeps reading replies until the server closes, or until ``--wait`` seconds
pass with nothing received, then closes normally (1000); so
``printf 'a\\nb\\n' | python -m wsdaemon.client ws://host/run`` prints every
reply of a ``process`` endpoint.

The exit status is 0 after a 1000 close handshake and 1 otherwise: a server
close with any other code (1001 "going away" included), a lost connection, a
refused upgrade. Each failure is one line on stderr, naming the close code
and reason when there are any. Keepalive pings (``--ping-interval``,
``--ping-timeout``) find a dead link; with ``--reconnect`` the client comes
back after any abnormal end, with exponential backoff and full jitter. On an
``envelope = "json"`` endpoint ``--recover`` (which implies ``--reconnect``)
resumes from the last message after each reconnect (docs/recovery.md), prints
each message as published (not its envelope) exactly once, and says on stderr
when messages were lost.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections import deque
from typing import Any, TextIO

from twisted.internet import stdio, task
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.protocols.basic import LineReceiver
from twisted.python.failure import Failure

from wsdaemon.adapter.reconnect import CLIENT_LIMITS, ConnectOptions, Ending, ReconnectingClient
from wsdaemon.adapter.resume import EnvelopeResumption
from wsdaemon.hub import Notice, NoticeType, Reason
from wsdaemon.interfaces import DaemonTransport

PROG = "wsdaemon.client"
#: Default quiet time after the end of input before closing.
DEFAULT_WAIT_SECONDS = 2.0


def say(text: str) -> None:
    """One line on stderr, prefixed with the program's name."""
    print(f"{PROG}: {text}", file=sys.stderr, flush=True)


class Terminal:
    """Between standard input/output and a :class:`ReconnectingClient`; it is the client's handler.

    Lines typed while no connection is open wait in a queue, and standard input
    is paused meanwhile, so nothing typed is lost and nothing piles up. Once the
    input has ended, the client reconnects only to send lines still queued.

    Args:
        clock: times the ``--wait`` quiet period.
        out: where messages are printed.
        wait_seconds: quiet time after the end of input before closing (``inf``: until the server closes).
    """

    def __init__(self, clock: IReactorTime, out: TextIO, wait_seconds: float) -> None:
        self.clock = clock
        self.out = out
        self.wait_seconds = wait_seconds
        self.client: ReconnectingClient | None = None
        self.input: Any = None  # standard input's transport, to pause and resume
        self.queue: deque[str] = deque()
        self.input_ended = False
        self._quiet: IDelayedCall | None = None

    # --- SessionHandler -------------------------------------------------------

    def opened(self, transport: DaemonTransport) -> None:
        """Send what was typed meanwhile, read standard input again."""
        if sys.stdin.isatty():
            say("connected; type a line to send it, end input (Ctrl-D) to close")
        while self.queue:
            transport.sendTextMessage(self.queue.popleft())
        if self.input_ended:
            self._arm_quiet()
        elif self.input is not None:
            self.input.resumeProducing()

    def textMessageReceived(self, message: str) -> None:
        """Print text as it is."""
        print(message, file=self.out, flush=True)
        self._arm_quiet_again()

    def bytesMessageReceived(self, data: bytes) -> None:
        """Print a short hex summary of binary data."""
        preview = data[:32].hex(" ")
        more = " ..." if len(data) > 32 else ""
        print(f"<binary {len(data)} bytes: {preview}{more}>", file=self.out, flush=True)
        self._arm_quiet_again()

    def ended(self, ending: Ending) -> None:
        """Stop the quiet timer; pause input until the next connection, or stop if nothing is left to send."""
        self._cancel_quiet()
        if self.input_ended and not self.queue:
            self._close()  # a new connection would bring no reply to what was sent: do not reconnect
        elif self.input is not None and not self.input_ended:
            self.input.pauseProducing()

    def reconnecting(self, delay_seconds: float, ending: Ending) -> None:
        """Say why, and when the next attempt comes."""
        say(f"{ending.describe()}; reconnecting in {delay_seconds:.1f} s")

    # --- standard input -------------------------------------------------------

    def line(self, text: str) -> None:
        """Send a typed line, or queue it (and pause input) while not connected."""
        transport = self.client.transport if self.client is not None else None
        if transport is not None and not self.queue:
            transport.sendTextMessage(text)
            return
        self.queue.append(text)
        if self.input is not None:
            self.input.pauseProducing()

    def end_of_input(self) -> None:
        """Wait for replies (see the module docstring), then close."""
        self.input_ended = True
        if self.client is not None and self.client.transport is not None:
            self._arm_quiet()
        elif not self.queue:
            self._close()  # between connections with nothing to send: stop reconnecting

    # --- the quiet period -------------------------------------------------------

    def _arm_quiet(self) -> None:
        self._cancel_quiet()
        if self.wait_seconds <= 0:
            self._close()
        elif math.isfinite(self.wait_seconds):
            self._quiet = self.clock.callLater(self.wait_seconds, self._close)

    def _arm_quiet_again(self) -> None:
        if self._quiet is not None:
            self._arm_quiet()

    def _cancel_quiet(self) -> None:
        if self._quiet is not None and self._quiet.active():
            self._quiet.cancel()
        self._quiet = None

    def _close(self) -> None:
        self._quiet = None
        if self.client is not None:
            self.client.close()


class InputLines(LineReceiver):
    """Hands each line of standard input to the :class:`Terminal`."""

    delimiter = b"\n"
    MAX_LENGTH = 2**31  # a line is one message; the connection's limits bound it, not this

    def __init__(self, terminal: Terminal) -> None:
        self.terminal = terminal

    def connectionMade(self) -> None:
        """Give the terminal the transport to pause; wait for the first connection."""
        self.terminal.input = self.transport
        if self.terminal.client is None or self.terminal.client.transport is None:
            self.transport.pauseProducing()  # type: ignore[union-attr]

    def lineReceived(self, line: bytes) -> None:
        """One line, one message (a trailing CR from a terminal is dropped)."""
        self.terminal.line(line.rstrip(b"\r").decode("utf-8", "replace"))

    def connectionLost(self, reason: Failure = Failure(Exception())) -> None:
        """End of input: a last line without a newline is still sent."""
        rest: bytes = self.clearLineBuffer()  # type: ignore[no-untyped-call]
        if rest:
            self.lineReceived(rest)
        self.terminal.end_of_input()


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The command line: the URL, handshake, keepalive, reconnect and wait options."""
    parser = argparse.ArgumentParser(
        prog=f"python -m {PROG}", description="Talk to a WebSocket server from the terminal."
    )
    parser.add_argument("url", help="ws://host:port/path or wss://host:port/path")
    parser.add_argument("--subprotocol", "-s", action="append", default=[], help="offer this subprotocol (repeatable)")
    parser.add_argument("--origin", help="send this Origin header")
    parser.add_argument(
        "--header", "-H", action="append", default=[], help='extra request header "Name: value" (repeatable)'
    )
    parser.add_argument("--cafile", help="PEM file of the CA to trust for wss:// (default: the system's)")
    limits = CLIENT_LIMITS
    parser.add_argument(
        "--max-message-bytes", type=int, default=limits.max_message_bytes, help="largest message accepted"
    )
    parser.add_argument("--no-deflate", action="store_true", help="do not offer permessage-deflate compression")
    parser.add_argument(
        "--ping-interval", type=float, default=limits.ping_interval_seconds, help="seconds between keepalive pings"
    )
    parser.add_argument(
        "--ping-timeout", type=float, default=limits.pong_timeout_seconds, help="seconds a pong may take; then fail"
    )
    parser.add_argument("--no-ping", action="store_true", help="send no keepalive pings")
    parser.add_argument(
        "--wait",
        type=float,
        default=DEFAULT_WAIT_SECONDS,
        metavar="SECONDS",
        help="after end of input, close once the server has been quiet this long (inf: wait for the server to close)",
    )
    parser.add_argument("--reconnect", action="store_true", help="reconnect after an abnormal close or a network error")
    parser.add_argument(
        "--recover",
        action="store_true",
        help='the URL is an envelope = "json" endpoint: reconnect and resume after the last message (implies --reconnect)',
    )
    args = parser.parse_args(argv)
    for header in args.header:
        if ":" not in header:
            parser.error(f"--header {header!r}: expected 'Name: value'")
    return args


def options_from(args: argparse.Namespace) -> ConnectOptions:
    """The connection options the command line asks for.

    Raises:
        ValueError: a limit out of its range (the message names it).
    """
    limits = CLIENT_LIMITS.replace(
        max_message_bytes=args.max_message_bytes,
        max_frame_bytes=args.max_message_bytes,
        ping_interval_seconds=args.ping_interval,
        pong_timeout_seconds=args.ping_timeout,
    )
    limits.validate()
    headers = tuple((name.strip(), value.strip()) for name, _, value in (h.partition(":") for h in args.header))
    return ConnectOptions(
        limits=limits,
        subprotocols=tuple(args.subprotocol),
        origin=args.origin,
        cafile=args.cafile,
        deflate=not args.no_deflate,
        keepalive=not args.no_ping,
        headers=headers,
    )


def tell_missing(notice: Notice) -> None:
    """With ``--recover``: one line on stderr when messages were lost (a ``not_recovered`` notice)."""
    if notice.type == NoticeType.NOT_RECOVERED and notice.reason != Reason.NO_EPOCH:
        say(f"some messages were missed ({notice.reason}); continuing after offset {notice.offset}")


def exit_status(ending: Ending, url: str) -> int:
    """0 after a 1000 close handshake; otherwise say why on stderr and return 1."""
    if ending.normal:
        return 0
    if ending.code is None:
        say(f"{url}: {ending.reason}")
    else:
        say(ending.describe())
    return 1


def make_client(
    reactor: Any, args: argparse.Namespace, terminal: Terminal, options: ConnectOptions
) -> ReconnectingClient:
    """The client the command line asks for: reconnecting with ``--reconnect``, resuming with ``--recover``.

    Raises:
        ValueError: the URL is not a ws:// or wss:// URL.
    """
    return ReconnectingClient(
        reactor,
        args.url,
        terminal,
        options=options,
        reconnect=args.reconnect or args.recover,
        resumption=EnvelopeResumption(tell_missing) if args.recover else None,
    )


async def session(reactor: Any, args: argparse.Namespace) -> int:
    """Connect, wire standard input to the connection, and wait until the client stops."""
    try:
        options = options_from(args)
        terminal = Terminal(reactor, sys.stdout, args.wait)
        client = make_client(reactor, args, terminal, options)
    except ValueError as error:
        say(str(error))
        return 1
    terminal.client = client
    finished = client.start()
    stdio.StandardIO(InputLines(terminal), reactor=reactor)
    ending = await finished
    return exit_status(ending, args.url)


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
