"""The reconnecting client of wsdaemon.adapter.reconnect: backoff, keepalive and when to come back.

No socket is opened and no reactor runs: each connection attempt is answered
by the test (:class:`FakeNetwork`), a server's 101 and frames are written by
hand, and time is ``MemoryReactorClock.advance``.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionDone, ConnectionLost, ConnectionRefusedError
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure

from tests.helpers import close_payload, parse_frames, server_frame
from wsdaemon.adapter.client import HandshakeFailed, TLSFailed
from wsdaemon.adapter.outcome import WebSocketClosed, WebSocketLost
from wsdaemon.adapter.reconnect import (
    Backoff,
    ConnectOptions,
    Ending,
    ReconnectingClient,
    ending_of_close,
    ending_of_failure,
)
from wsdaemon.core import Limits, accept_key
from wsdaemon.core.frames import Opcode

CLOSE, PING, PONG, TEXT = Opcode.CLOSE, Opcode.PING, Opcode.PONG, Opcode.TEXT
URL = "ws://example.test/feed"


class Attempt:
    """One connection attempt the client made, for the test to answer."""

    def __init__(self, factory: Factory) -> None:
        self.factory = factory
        self.deferred: Deferred[Protocol] = Deferred()
        self.transport = StringTransport()
        self.protocol: Any = None
        self.request = b""

    def refuse(self) -> None:
        """The TCP connection is refused."""
        self.deferred.errback(ConnectionRefusedError())

    def _open_tcp(self) -> None:
        if self.protocol is None:
            self.protocol = self.factory.buildProtocol(None)
            self.protocol.makeConnection(self.transport)
            self.deferred.callback(self.protocol)

    def answer(self, head: bytes) -> None:
        """The TCP connection opens and the server answers the upgrade with ``head``."""
        self._open_tcp()
        self.protocol.dataReceived(head)

    def accept(self) -> None:
        """The server accepts the upgrade with a correct 101."""
        self._open_tcp()
        self.request = self.transport.value()
        self.transport.clear()
        key = re.search(rb"Sec-WebSocket-Key: (\S+)", self.request)
        assert key is not None
        head = (
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: " + accept_key(key.group(1).decode()).encode() + b"\r\n\r\n"
        )
        self.answer(head)

    def request_target(self) -> str:
        """The request line's target, e.g. ``/feed?since=3``."""
        return self.request.split(b" ")[1].decode()

    def send(self, data: bytes) -> None:
        """Bytes from the server."""
        self.protocol.dataReceived(data)

    def close_from_server(self, code: int, reason: bytes = b"") -> None:
        """The server's close frame, our echo, then the server drops TCP."""
        self.send(server_frame(CLOSE, close_payload(code, reason)))
        self.protocol.connectionLost(Failure(ConnectionDone()))

    def drop(self) -> None:
        """The TCP connection is gone without a close frame."""
        self.protocol.connectionLost(Failure(ConnectionLost()))

    def frames(self) -> list[tuple[bool, int, bytes]]:
        """Frames the client wrote since the last call."""
        data = self.transport.value()
        self.transport.clear()
        return parse_frames(data, masked=True)


class FakeNetwork:
    """An endpoint factory for ``connect``: records each attempt instead of dialling."""

    def __init__(self) -> None:
        self.attempts: list[Attempt] = []

    def endpoint_factory(self, reactor: object, target: Any, cafile: str | None) -> FakeNetwork:
        return self

    def connect(self, factory: Factory) -> Deferred[Protocol]:
        attempt = Attempt(factory)
        self.attempts.append(attempt)
        return attempt.deferred

    @property
    def last(self) -> Attempt:
        return self.attempts[-1]


class Recorder:
    """A SessionHandler that writes down everything it is told."""

    def __init__(self) -> None:
        self.log: list[tuple[str, Any]] = []
        self.transport: Any = None

    def opened(self, transport: Any) -> None:
        self.transport = transport
        self.log.append(("opened", None))

    def textMessageReceived(self, message: str) -> None:
        self.log.append(("text", message))

    def bytesMessageReceived(self, data: bytes) -> None:
        self.log.append(("bytes", data))

    def ended(self, ending: Ending) -> None:
        self.log.append(("ended", ending))

    def reconnecting(self, delay_seconds: float, ending: Ending) -> None:
        self.log.append(("reconnecting", delay_seconds))

    def kinds(self) -> list[str]:
        return [kind for kind, _ in self.log]

    def delays(self) -> list[float]:
        return [value for kind, value in self.log if kind == "reconnecting"]


class Session:
    """A ReconnectingClient on a memory clock and a fake network; the backoff draws the top of each window."""

    def __init__(self, *, reconnect: bool = True, keepalive: bool = True, **kwargs: Any) -> None:
        self.clock = MemoryReactorClock()
        self.network = FakeNetwork()
        self.handler = Recorder()
        limits = Limits(ping_interval_seconds=20.0, pong_timeout_seconds=10.0, idle_timeout_seconds=86400.0)
        options = ConnectOptions(
            limits=limits, deflate=False, keepalive=keepalive, extra={"endpoint_factory": self.network.endpoint_factory}
        )
        kwargs.setdefault("backoff", Backoff(random=lambda: 0.999))
        self.client = ReconnectingClient(self.clock, URL, self.handler, options=options, reconnect=reconnect, **kwargs)
        self.finished = self.client.start()

    def open(self) -> Attempt:
        """Accept the pending attempt."""
        self.network.last.accept()
        return self.network.last

    def wait_out_backoff(self) -> None:
        """Let the scheduled reconnect fire."""
        self.clock.advance(self.handler.delays()[-1])


# --- backoff -----------------------------------------------------------------------------------


def test_backoff_windows_double_from_one_second_up_to_thirty():
    """Full jitter: each delay is under min(30, 2**n) seconds, the first under one second."""
    backoff = Backoff(random=lambda: 0.999)
    delays = [backoff.next_delay() for _ in range(8)]
    assert [round(d, 1) for d in delays] == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]


def test_backoff_draws_anywhere_in_the_window():
    """The delay is the random fraction of the window: a draw of 0 retries at once."""
    draws = iter([0.0, 0.5, 0.25])
    backoff = Backoff(random=lambda: next(draws))
    assert [backoff.next_delay() for _ in range(3)] == [0.0, 1.0, 1.0]


def test_backoff_reset_starts_again_from_the_first_window():
    """After reset the next delay is within the first second again."""
    backoff = Backoff(random=lambda: 0.999)
    for _ in range(5):
        backoff.next_delay()
    backoff.reset()
    assert backoff.next_delay() < 1.0


def test_default_backoff_first_retry_is_within_a_second():
    """With the real random source the first retry always comes in under a second."""
    assert all(Backoff().next_delay() < 1.0 for _ in range(200))


# --- when to reconnect -------------------------------------------------------------------------


def test_server_going_away_leads_to_a_reconnect_within_a_second():
    """A server restart (1001) is followed by a new attempt within the first backoff window."""
    session = Session()
    session.open().close_from_server(1001, b"server shutting down")
    assert session.handler.kinds() == ["opened", "ended", "reconnecting"]
    assert session.handler.delays()[0] < 1.0
    session.wait_out_backoff()
    assert len(session.network.attempts) == 2
    session.open()
    assert session.handler.kinds()[-1] == "opened"
    assert not session.finished.called


def test_dropped_tcp_leads_to_a_reconnect():
    """A connection lost without a close frame (1006) is retried."""
    session = Session()
    session.open().drop()
    ending = session.handler.log[1][1]
    assert (ending.code, ending.clean, ending.retry) == (1006, False, True)
    assert session.handler.kinds()[-1] == "reconnecting"


def test_refused_connections_back_off_exponentially():
    """Refused attempts are retried with windows of 1, 2, 4, 8 ... seconds."""
    session = Session()
    for _ in range(4):
        session.network.last.refuse()
        session.wait_out_backoff()
    assert [round(d) for d in session.handler.delays()] == [1, 2, 4, 8]
    assert len(session.network.attempts) == 5


def test_a_stable_connection_resets_the_backoff():
    """After a connection stayed up stable_after_seconds, the next retry is within a second again."""
    session = Session(stable_after_seconds=10.0)
    for _ in range(3):
        session.network.last.refuse()
        session.wait_out_backoff()
    attempt = session.open()
    session.clock.advance(10.0)
    attempt.drop()
    assert session.handler.delays()[-1] < 1.0


def test_a_short_lived_connection_keeps_backing_off():
    """A connection that drops at once does not reset the backoff (no tight reconnect loop)."""
    session = Session(stable_after_seconds=10.0)
    session.network.last.refuse()
    session.wait_out_backoff()
    session.open().drop()
    assert round(session.handler.delays()[-1]) == 2


def test_servers_normal_close_is_not_retried():
    """A 1000 from the server ends the session: finished fires with a normal ending."""
    session = Session()
    session.open().close_from_server(1000, b"done")
    ending = session.finished.result
    assert ending.normal and not ending.requested
    assert "reconnecting" not in session.handler.kinds()


def test_users_close_is_not_retried():
    """close() sends a 1000, and after the server's answer no reconnect follows."""
    session = Session()
    attempt = session.open()
    session.client.close()
    assert attempt.frames()[0][1] == CLOSE
    attempt.close_from_server(1000)
    assert session.finished.result.requested
    assert "reconnecting" not in session.handler.kinds()


def test_close_while_waiting_to_reconnect_cancels_the_retry():
    """close() during the backoff wait ends the session and no attempt follows."""
    session = Session()
    session.network.last.refuse()
    session.client.close()
    session.clock.advance(60)
    assert len(session.network.attempts) == 1
    assert session.finished.result.requested


def test_close_while_connecting_closes_as_soon_as_open():
    """close() before the 101 arrives: the opened connection is closed at once, unseen by the user."""
    session = Session()
    session.client.close()
    attempt = session.open()
    assert attempt.frames()[0][1] == CLOSE
    assert "opened" not in session.handler.kinds()


def test_without_reconnect_the_first_end_is_final():
    """reconnect=False: a 1001 ends the session, with its code and reason."""
    session = Session(reconnect=False)
    session.open().close_from_server(1001, b"bye")
    ending = session.finished.result
    assert (ending.code, ending.reason, ending.clean) == (1001, "bye", True)


@pytest.mark.parametrize("status", [400, 401, 403, 404])
def test_a_client_error_answer_is_not_retried(status):
    """An upgrade refused with a 4xx will be refused again: no reconnect, the status in the reason."""
    session = Session()
    session.network.last.answer(b"HTTP/1.1 %d Nope\r\nContent-Length: 0\r\n\r\n" % status)
    ending = session.finished.result
    assert str(status) in ending.describe() and not ending.retry


def test_a_503_is_retried_no_sooner_than_its_retry_after():
    """A 503 with Retry-After: 5 is retried, and not before 5 seconds."""
    session = Session(backoff=Backoff(random=lambda: 0.1))
    session.network.last.answer(b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 5\r\n\r\n")
    assert session.handler.delays() == [5.0]


# --- keepalive ---------------------------------------------------------------------------------


def test_client_pings_after_the_interval():
    """With keepalive on, a ping goes out once ping_interval_seconds have passed."""
    session = Session()
    attempt = session.open()
    session.clock.advance(19)
    assert attempt.frames() == []
    session.clock.advance(2)
    assert [opcode for _, opcode, _ in attempt.frames()] == [PING]


def test_no_pong_in_time_fails_with_1011_and_reconnects():
    """A ping left unanswered for pong_timeout_seconds: 1011 keepalive timeout, then a reconnect."""
    session = Session()
    attempt = session.open()
    session.clock.advance(21)
    attempt.frames()
    session.clock.advance(11)
    frames = attempt.frames()
    assert frames[-1][1] == CLOSE and frames[-1][2] == close_payload(1011, b"keepalive timeout")
    attempt.protocol.connectionLost(Failure(ConnectionDone()))
    ending = next(value for kind, value in session.handler.log if kind == "ended")
    assert (ending.code, ending.reason) == (1011, "keepalive timeout")
    assert session.handler.kinds()[-1] == "reconnecting"


def test_a_pong_keeps_the_connection_alive():
    """Each ping answered by its pong: no failure, and the next ping a full interval later."""
    session = Session()
    attempt = session.open()
    for _ in range(3):
        session.clock.advance(21)
        (_, opcode, payload), *_ = attempt.frames()
        assert opcode == PING
        attempt.send(server_frame(PONG, payload))
        session.clock.advance(11)
        assert attempt.frames() == []
    assert "ended" not in session.handler.kinds()


def test_keepalive_off_sends_no_ping():
    """keepalive=False: a quiet connection stays quiet."""
    session = Session(keepalive=False)
    attempt = session.open()
    session.clock.advance(120)
    assert attempt.frames() == []


# --- messages and resumption ---------------------------------------------------------------------


class Resume:
    """A resumption that numbers messages and asks for the next one on reconnect."""

    def __init__(self) -> None:
        self.seen = 0

    def url(self, base_url: str) -> str:
        return f"{base_url}?since={self.seen}"

    def received(self, message: str | bytes) -> str | bytes | None:
        if message == "notice":
            return None
        self.seen += 1
        return message


def test_messages_reach_the_handler_through_the_resumption():
    """The resumption filters what the user sees and picks each attempt's URL."""
    session = Session(resumption=Resume())
    attempt = session.open()
    assert attempt.request_target() == "/feed?since=0"
    attempt.send(server_frame(TEXT, b"one") + server_frame(TEXT, b"notice") + server_frame(Opcode.BINARY, b"\x01"))
    assert [entry for entry in session.handler.log if entry[0] != "opened"] == [("text", "one"), ("bytes", b"\x01")]
    attempt.drop()
    session.wait_out_backoff()
    assert session.open().request_target() == "/feed?since=2"


def test_sending_through_the_opened_transport():
    """The handler sends through the transport it was given when the connection opened."""
    session = Session()
    attempt = session.open()
    session.handler.transport.sendTextMessage("hi")
    assert attempt.frames() == [(True, TEXT, b"hi")]


def test_a_bad_url_is_refused_at_once():
    """A URL that is not ws:// or wss:// raises ValueError from the constructor."""
    with pytest.raises(ValueError, match="not a ws:// or wss:// URL"):
        ReconnectingClient(MemoryReactorClock(), "http://example.test/", Recorder())


# --- endings, described ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "text", "retry"),
    [
        (ConnectionRefusedError(), "cannot connect: Connection was refused by other side", True),
        (HandshakeFailed("server answered 404 Not Found", 404), "upgrade refused: server answered 404", False),
        (HandshakeFailed("server answered 502 Bad Gateway", 502), "upgrade refused: server answered 502", True),
        (TLSFailed("TLS: the certificate of 'x' is not trusted"), "TLS: the certificate", False),
    ],
)
def test_failures_to_connect_have_one_line_reasons(error, text, retry):
    """Each way of not getting a WebSocket is one line, and only lasting ones are not retried."""
    ending = ending_of_failure(Failure(error))
    assert ending.describe().startswith(text) and "\n" not in ending.describe()
    assert ending.retry is retry and ending.code is None


def test_a_close_is_described_with_code_and_reason():
    """A server's 1001 reads "the server closed the connection with 1001: reason"."""
    ending = ending_of_close(Failure(WebSocketClosed(1001, "server shutting down")), requested=False)
    assert ending.describe() == "the server closed the connection with 1001: server shutting down"


def test_a_lost_connection_is_described_as_1006():
    """A drop without a close frame says so, with 1006."""
    ending = ending_of_close(Failure(WebSocketLost(1006, "")), requested=False)
    assert ending.describe() == "connection lost without a close frame (1006)" and ending.retry
