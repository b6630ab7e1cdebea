"""The command-line client's logic (wsdaemon.client), without a socket: the wait after input, queued lines, exit codes."""

from __future__ import annotations

import io
from typing import Any

import pytest
from twisted.internet.testing import MemoryReactorClock

from wsdaemon.adapter.reconnect import Ending
from wsdaemon.adapter.resume import EnvelopeResumption
from wsdaemon.client import Terminal, exit_status, make_client, options_from, parse_args, tell_missing
from wsdaemon.hub import Notice, NoticeType


class FakeTransport:
    """What the terminal sends through."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    def sendTextMessage(self, text: str) -> None:
        self.sent.append(text)


class FakeInput:
    """Standard input's transport: only paused and resumed."""

    def __init__(self) -> None:
        self.paused = False

    def pauseProducing(self) -> None:
        self.paused = True

    def resumeProducing(self) -> None:
        self.paused = False


class FakeClient:
    """A ReconnectingClient stand-in: an optional transport, and close() counted."""

    def __init__(self) -> None:
        self.transport: Any = None
        self.closes = 0

    def close(self) -> None:
        self.closes += 1


def terminal(wait: float = 2.0) -> tuple[Terminal, MemoryReactorClock, FakeClient, FakeInput]:
    clock = MemoryReactorClock()
    term = Terminal(clock, io.StringIO(), wait)
    client, stdin = FakeClient(), FakeInput()
    term.client, term.input = client, stdin  # type: ignore[assignment]
    return term, clock, client, stdin


def open_connection(term: Terminal, client: FakeClient) -> FakeTransport:
    transport = FakeTransport()
    client.transport = transport
    term.opened(transport)  # type: ignore[arg-type]
    return transport


def test_lines_typed_before_the_connection_opens_are_sent_once_it_does():
    """Nothing typed is lost while connecting: lines wait, input pauses, and both resume on open."""
    term, _, client, stdin = terminal()
    term.line("early")
    assert stdin.paused
    transport = open_connection(term, client)
    assert transport.sent == ["early"] and not stdin.paused


def test_end_of_input_closes_after_the_quiet_period():
    """After the input ends, the client closes once the server has said nothing for --wait seconds."""
    term, clock, client, _ = terminal(wait=2.0)
    open_connection(term, client)
    term.end_of_input()
    clock.advance(1.9)
    assert client.closes == 0
    clock.advance(0.2)
    assert client.closes == 1


def test_each_reply_restarts_the_quiet_period():
    """Replies that keep coming keep the connection open: every one is printed before the close."""
    term, clock, client, _ = terminal(wait=2.0)
    open_connection(term, client)
    term.end_of_input()
    for i in range(5):
        clock.advance(1.5)
        term.textMessageReceived(f"reply {i}")
    assert client.closes == 0
    clock.advance(2.0)
    assert client.closes == 1
    assert term.out.getvalue().splitlines() == [f"reply {i}" for i in range(5)]  # type: ignore[attr-defined]


def test_wait_inf_never_closes_by_itself():
    """--wait inf leaves the close to the server."""
    term, clock, client, _ = terminal(wait=float("inf"))
    open_connection(term, client)
    term.end_of_input()
    clock.advance(10**6)
    assert client.closes == 0


def test_input_ending_while_reconnecting_waits_for_the_next_connection():
    """Lines queued during a reconnect are sent when it opens, and only then does the wait start."""
    term, clock, client, _ = terminal(wait=1.0)
    term.line("queued")
    term.end_of_input()
    clock.advance(10)
    assert client.closes == 0
    transport = open_connection(term, client)
    assert transport.sent == ["queued"]
    clock.advance(1.0)
    assert client.closes == 1


def test_binary_messages_are_summarized_in_hex():
    """A binary message prints its size and its first 32 bytes in hex."""
    term, _, _, _ = terminal()
    term.bytesMessageReceived(bytes(range(40)))
    line = term.out.getvalue()  # type: ignore[attr-defined]
    assert line.startswith("<binary 40 bytes: 00 01 02") and line.rstrip().endswith("1f ...>")


@pytest.mark.parametrize(
    ("ending", "status", "said"),
    [
        (Ending(1000, "", clean=True), 0, ""),
        (Ending(1001, "server shutting down", clean=True), 1, "closed the connection with 1001: server shutting down"),
        (Ending(4000, "bye", clean=True), 1, "with 4000: bye"),
        (Ending(1006, "", clean=False), 1, "(1006)"),
        (Ending(None, "cannot connect: refused"), 1, "ws://x/: cannot connect: refused"),
    ],
)
def test_exit_status_is_0_only_after_a_1000_close(capsys, ending, status, said):
    """1000 → 0 and silence; 1001, any other code, a drop or a failed connect → 1 and one stderr line."""
    assert exit_status(ending, "ws://x/") == status
    err = capsys.readouterr().err
    assert (said in err) if said else err == ""
    assert err.count("\n") == (0 if status == 0 else 1)


def test_options_carry_keepalive_and_headers():
    """--ping-interval, --ping-timeout, --header and --no-deflate reach the connection options."""
    args = parse_args(["ws://h/", "--ping-interval", "5", "--ping-timeout", "3", "-H", "X-Token: abc", "--no-deflate"])
    options = options_from(args)
    assert (options.limits.ping_interval_seconds, options.limits.pong_timeout_seconds) == (5.0, 3.0)
    assert options.headers == (("X-Token", "abc"),) and not options.deflate and options.keepalive


def test_no_ping_turns_keepalive_off():
    """--no-ping: no keepalive pings."""
    assert not options_from(parse_args(["ws://h/", "--no-ping"])).keepalive


def test_an_out_of_range_ping_interval_is_refused_by_name():
    """--ping-interval 0 is refused with a message naming ping_interval_seconds."""
    with pytest.raises(ValueError, match="ping_interval_seconds"):
        options_from(parse_args(["ws://h/", "--ping-interval", "0"]))


def test_input_ended_and_nothing_queued_stops_reconnecting():
    """A connection lost after the input ended, with nothing left to send, ends the client."""
    term, _, client, _ = terminal(wait=5.0)
    open_connection(term, client)
    term.end_of_input()
    client.transport = None
    term.ended(Ending(1006, ""))
    assert client.closes == 1


def test_input_ending_between_connections_with_nothing_queued_stops():
    """End of input while reconnecting, every line already sent: stop instead of reconnecting."""
    term, _, client, _ = terminal()
    term.end_of_input()
    assert client.closes == 1


def test_recover_resumes_envelopes_and_implies_reconnect():
    """--recover: the client reconnects and resumes with the envelope protocol; without it, plain messages."""
    args = parse_args(["ws://h/chat/x", "--recover"])
    term = Terminal(MemoryReactorClock(), io.StringIO(), 1.0)
    client = make_client(MemoryReactorClock(), args, term, options_from(args))
    assert client.reconnect and isinstance(client.resumption, EnvelopeResumption)
    plain = make_client(MemoryReactorClock(), parse_args(["ws://h/"]), term, options_from(args))
    assert not plain.reconnect and not isinstance(plain.resumption, EnvelopeResumption)


def test_missed_messages_are_said_on_stderr(capsys):
    """A not_recovered notice is one stderr line with its reason; a first visit's no_epoch is not news."""
    tell_missing(Notice(NoticeType.NOT_RECOVERED, "/chat/x", "e2", 0, "epoch_changed"))
    tell_missing(Notice(NoticeType.NOT_RECOVERED, "/chat/x", "e2", 0, "no_epoch"))
    tell_missing(Notice(NoticeType.RECOVERED, "/chat/x", "e2", 4))
    err = capsys.readouterr().err
    assert err == "wsdaemon.client: some messages were missed (epoch_changed); continuing after offset 0\n"
