"""The broadcast handler with ``envelope = "json"``: positions, recovery and notices (docs/recovery.md), in memory."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from twisted.application.service import MultiService
from twisted.internet.defer import Deferred, fail
from twisted.internet.testing import MemoryReactorClock

from wsdaemon.broker import HistoryUnavailable, InProcessBroker
from wsdaemon.core import Limits
from wsdaemon.core.frames import Opcode, SharedMessage
from wsdaemon.handlers.broadcast import BroadcastFactory, EnvelopeMember, build_factory
from wsdaemon.hub import Fetch, HubLimits, Publication
from wsdaemon.interfaces import HandlerContext, HandlerOptionsError
from wsdaemon.testing import MemoryClient, MemoryServer

DOC = Path(__file__).resolve().parents[2] / "docs" / "recovery.md"
EPOCH = "6743a1f0-9c1e2b3a4d5f6a7b"
OTHER_EPOCH = "6744b000-0f1e2d3c4b5a6978"


class Daemon:
    """A daemon in memory with an envelope endpoint at /chat (channels by path) and a plain one at /plain."""

    def __init__(self, options: dict[str, Any] | None = None, broker: Any = None, limits: Limits | None = None):
        self.reactor = MemoryReactorClock()
        make = broker or (lambda clock: InProcessBroker(clock, epochs=iter([EPOCH]).__next__))
        self.broker = make(self.reactor)
        context = HandlerContext(self.reactor, MultiService(), self.broker)
        chat = {"envelope": "json", "channel_from_path": True, "history_size": 100, **(options or {})}
        self.chat = build_factory(chat, "/chat", context)
        self.plain = build_factory({"history_size": 100}, "/plain", context)
        self.server = MemoryServer({"/chat": self.chat, "/plain": self.plain}, reactor=self.reactor, limits=limits)

    def connect(self, path: str = "/chat/room1") -> MemoryClient:
        return self.server.connect(path)

    def publish(self, *texts: str, channel: str = "/chat/room1") -> None:
        """Publish as the API does: positioned with the endpoint's bounds."""
        for text in texts:
            self.broker.publish(channel, SharedMessage(Opcode.TEXT, text.encode()), history=self.chat.history_limits)
        self.server.pump()


def envelopes(client: MemoryClient) -> list[dict[str, Any]]:
    """What the client received, each a text message holding one JSON object."""
    received = client.received()
    assert all(isinstance(message, str) for message in received)
    return [json.loads(message) for message in received]


def data_of(items: list[dict[str, Any]]) -> list[tuple[int, str]]:
    return [(item["offset"], item["data"]) for item in items if "type" not in item]


def notice(kind: str, offset: int, epoch: str = EPOCH, reason: str | None = None) -> dict[str, Any]:
    found = {"type": kind, "channel": "/chat/room1", "epoch": epoch, "offset": offset}
    if reason is not None:
        found["reason"] = reason
    return found


# --- delivery --------------------------------------------------------------------------------


def test_a_plain_subscription_starts_with_subscribed_then_gets_envelopes():
    """Without a query: one `subscribed` notice at the channel's position, then each message with its offset."""
    daemon = Daemon()
    daemon.publish("before")
    client = daemon.connect()
    assert envelopes(client) == [notice("subscribed", 1)]
    daemon.publish("hello", "wörld")
    assert envelopes(client) == [
        {"channel": "/chat/room1", "epoch": EPOCH, "offset": 2, "data": "hello"},
        {"channel": "/chat/room1", "epoch": EPOCH, "offset": 3, "data": "wörld"},
    ]


def test_what_a_member_sends_is_positioned_and_binary_goes_as_base64():
    """A member's own text and binary messages come back to every member as envelopes (binary in b64)."""
    daemon = Daemon()
    alice, bob = daemon.connect(), daemon.connect()
    envelopes(alice), envelopes(bob)
    alice.send_text('{"not": "an envelope"}')
    alice.send_bytes(b"\x00\x01\xfe\xff")
    expected = [
        {"channel": "/chat/room1", "epoch": EPOCH, "offset": 1, "data": '{"not": "an envelope"}'},
        {"channel": "/chat/room1", "epoch": EPOCH, "offset": 2, "b64": "AAH+/w=="},
    ]
    assert envelopes(alice) == expected and envelopes(bob) == expected


def test_a_plain_endpoint_sends_raw_messages_and_no_notices():
    """An endpoint without envelope is unchanged: raw messages, no notice, whatever the query says."""
    daemon = Daemon()
    client = daemon.server.connect("/plain?since=abc")
    assert client.accepted
    daemon.publish("raw", channel="/plain")
    assert client.received() == ["raw"]


def test_a_message_published_without_a_position_is_not_sent_to_envelope_clients():
    """A raw (unpositioned) publish to an envelope channel never reaches its clients as a bare message."""
    daemon = Daemon()
    client = daemon.connect()
    envelopes(client)
    daemon.broker.publish("/chat/room1", SharedMessage(Opcode.TEXT, b"bare"))
    assert client.received() == []
    assert isinstance(client.handler, EnvelopeMember) and client.handler.unpositioned == 1


def test_one_frame_is_shared_by_every_member():
    """The factory frames a publication's envelope once; every member is handed that same SharedMessage."""
    daemon = Daemon()
    publication = Publication("/chat/room1", EPOCH, 1, b"x")
    first = daemon.chat.frame(publication)
    assert daemon.chat.frame(publication) is first
    assert first.payload == publication.envelope() and first.opcode == Opcode.TEXT
    assert daemon.chat.frame(Publication("/chat/room1", EPOCH, 2, b"y")) is not first


# --- malformed recovery queries: 400 before the 101 -----------------------------------------------

MALFORMED = [
    ("epoch=" + EPOCH, "since: missing (epoch needs since)"),
    ("since=", "since: not a non-negative integer"),
    ("since=abc", "since: not a non-negative integer"),
    ("since=1.5", "since: not a non-negative integer"),
    ("since=%2B1", "since: not a non-negative integer"),
    ("since=1e3", "since: not a non-negative integer"),
    ("since=%201", "since: not a non-negative integer"),
    ("since=0x1", "since: not a non-negative integer"),
    ("since=1_000", "since: not a non-negative integer"),
    ("since=-1", "since: negative"),
    ("since=9007199254740992", "since: too large"),
    ("since=99999999999999999999999", "since: too large"),
    ("since=1&epoch=", "epoch: malformed (...)"),
    ("since=1&epoch=" + "a" * 65, "epoch: malformed (...)"),
    ("since=1&epoch=a/b", "epoch: malformed (...)"),
    ("since=1&since=2", "since: repeated"),
    ("since=1&epoch=a&epoch=b", "epoch: repeated"),
]


@pytest.mark.parametrize(("query", "answer"), MALFORMED)
def test_a_malformed_recovery_query_is_refused_with_the_documented_400(query, answer):
    """Each malformed query of docs/recovery.md gets HTTP 400 and its one-line reason before any upgrade."""
    client = Daemon().connect("/chat/room1?" + query)
    assert client.status == 400 and not client.accepted
    body = client.body.decode()
    assert body.endswith("\n") and body.count("\n") == 1
    if answer.endswith("(...)"):
        assert body.startswith(answer[: -len("(...)")] + "(")
    else:
        assert body == answer + "\n"


def test_every_400_answer_tested_is_the_one_the_document_gives():
    """The page's table of malformed queries lists exactly the answers tested above."""
    text = DOC.read_text(encoding="utf-8")
    documented = set()
    for row in re.findall(r"^\| .* \| 400 (.*) \|$", text, re.MULTILINE):
        documented.update(re.findall(r"`([^`]+)`", row))
    assert documented == {answer for _, answer in MALFORMED}


def test_other_query_parameters_are_left_alone():
    """An access token next to the recovery query does not disturb it."""
    daemon = Daemon()
    daemon.publish("a")
    client = daemon.connect(f"/chat/room1?token=xyz&since=0&epoch={EPOCH}&x=1")
    assert envelopes(client) == [
        notice("recovered", 0),
        {"channel": "/chat/room1", "epoch": EPOCH, "offset": 1, "data": "a"},
    ]


# --- recovery ---------------------------------------------------------------------------------------


def test_a_reconnect_gets_exactly_what_it_missed_then_live():
    """since=N&epoch=E: `recovered` at N, the missed messages in order, then live ones; no gap, no duplicate."""
    daemon = Daemon()
    client = daemon.connect()
    envelopes(client)
    daemon.publish("m1", "m2", "m3")
    assert [item["offset"] for item in envelopes(client)] == [1, 2, 3]
    client.disconnect()
    daemon.publish(*[f"m{n}" for n in range(4, 11)])
    again = daemon.connect(f"/chat/room1?since=3&epoch={EPOCH}")
    got = envelopes(again)
    assert got[0] == notice("recovered", 3)
    assert data_of(got[1:]) == [(n, f"m{n}") for n in range(4, 11)]
    daemon.publish("m11")
    assert data_of(envelopes(again)) == [(11, "m11")]


def test_a_foreign_epoch_is_not_recovered_and_gets_what_history_has():
    """An epoch of another history: `not_recovered` (epoch_changed) at the offset before the oldest kept, then all of it."""
    daemon = Daemon()
    daemon.publish("a", "b")
    client = daemon.connect(f"/chat/room1?since=7&epoch={OTHER_EPOCH}")
    got = envelopes(client)
    assert got[0] == notice("not_recovered", 0, reason="epoch_changed")
    assert data_of(got[1:]) == [(1, "a"), (2, "b")]


def test_since_without_epoch_replays_history_as_no_epoch():
    """?since=0 (a first visit wanting history): `not_recovered` with reason no_epoch, then what is kept."""
    daemon = Daemon()
    daemon.publish("a")
    got = envelopes(daemon.connect("/chat/room1?since=0"))
    assert got == [notice("not_recovered", 0, reason="no_epoch"), {**got[1], "data": "a", "offset": 1}]


def test_an_offset_beyond_the_last_is_ahead():
    """An offset the channel never reached: `not_recovered`, reason ahead."""
    daemon = Daemon()
    daemon.publish("a")
    got = envelopes(daemon.connect(f"/chat/room1?since=5&epoch={EPOCH}"))
    assert got[0] == notice("not_recovered", 0, reason="ahead") and data_of(got[1:]) == [(1, "a")]


def test_with_history_off_a_reconnect_that_missed_something_is_expired():
    """history_size = 0: offsets go on, nothing is kept; a client that missed one message is told `expired`."""
    daemon = Daemon({"history_size": 0})
    daemon.publish("a", "b")
    got = envelopes(daemon.connect(f"/chat/room1?since=1&epoch={EPOCH}"))
    assert got == [notice("not_recovered", 2, reason="expired")]
    caught_up = daemon.connect(f"/chat/room1?since=2&epoch={EPOCH}")
    assert envelopes(caught_up) == [notice("recovered", 2)]


class SlowHistory(InProcessBroker):
    """The in-process broker, but history() answers when the test says (as Redis answers later)."""

    def __init__(self, clock: Any) -> None:
        super().__init__(clock, epochs=iter([EPOCH]).__next__)
        self.pending: list[tuple[Fetch, HubLimits, Deferred[Any], Any]] = []

    def history(self, channel, fetch, limits):
        answer: Deferred[Any] = Deferred()
        snapshot = self.history_stores.answer(fetch, limits)  # read at issue time
        self.pending.append((fetch, limits, answer, snapshot))
        return answer

    def answer_with_snapshot(self) -> None:
        """Answer the oldest fetch with what history held when it was issued."""
        _fetch, _limits, answer, snapshot = self.pending.pop(0)
        answer.callback(snapshot)

    def answer_now(self) -> None:
        """Answer the oldest fetch with what history holds now (later than it was issued)."""
        fetch, limits, answer, _snapshot = self.pending.pop(0)
        answer.callback(self.history_stores.answer(fetch, limits))

    def refuse(self) -> None:
        _fetch, _limits, answer, _snapshot = self.pending.pop(0)
        answer.errback(HistoryUnavailable("redis is down"))


@pytest.mark.parametrize("answer", ["answer_with_snapshot", "answer_now"])
def test_publishing_during_a_pending_fetch_gives_no_gap_and_no_duplicate(answer):
    """Messages published while the history read is outstanding come once each, in order, after the history."""
    daemon = Daemon(broker=SlowHistory)
    slow = daemon.broker
    daemon.publish(*[f"m{n}" for n in range(1, 11)])
    client = daemon.connect(f"/chat/room1?since=4&epoch={EPOCH}")
    assert client.accepted and client.received() == []  # nothing before the fetch is answered
    daemon.publish(*[f"m{n}" for n in range(11, 16)])
    assert client.received() == []  # held, not sent ahead of the history
    getattr(slow, answer)()
    daemon.server.pump()
    got = envelopes(client)
    assert got[0] == notice("recovered", 4)
    assert data_of(got[1:]) == [(n, f"m{n}") for n in range(5, 16)]
    daemon.publish("m16")
    assert data_of(envelopes(client)) == [(16, "m16")]
    assert slow.pending == []


def test_history_that_cannot_be_read_closes_with_1013():
    """The first fetch fails with HistoryUnavailable: the connection closes with 1013 (reconnect later)."""
    daemon = Daemon(broker=SlowHistory)
    slow = daemon.broker
    client = daemon.connect(f"/chat/room1?since=0&epoch={EPOCH}")
    slow.refuse()
    assert client.close_code == 1013 and "history unavailable" in (client.close_reason or "")
    assert client.received() == []
    daemon.publish("after")
    assert daemon.broker.members.count("/chat/room1") == 0


def test_a_failing_history_read_is_a_1011_not_a_traceback():
    """Any other failure of the history read: logged, and the connection closes with 1011."""

    class Broken(InProcessBroker):
        def history(self, channel, fetch, limits):
            return fail(RuntimeError("bug"))

    daemon = Daemon(broker=Broken)
    client = daemon.connect()
    assert client.close_code == 1011 and client.received() == []


# --- heartbeat ---------------------------------------------------------------------------------------


def test_a_quiet_connection_gets_heartbeat_notices_at_the_ping_interval():
    """Nothing sent for ping_interval_seconds: a `heartbeat` notice with the last position; traffic postpones it."""
    daemon = Daemon(limits=Limits(ping_interval_seconds=10, pong_timeout_seconds=10, idle_timeout_seconds=3600))
    client = daemon.connect()
    envelopes(client)
    daemon.publish("a")
    envelopes(client)
    for _ in range(8):
        daemon.server.advance(1)
    assert client.received() == []  # 8 s of quiet: not yet
    daemon.publish("b")  # traffic: the quiet starts over
    envelopes(client)
    for _ in range(9):
        daemon.server.advance(1)
    assert client.received() == []
    for _ in range(3):
        daemon.server.advance(1)
    assert envelopes(client) == [notice("heartbeat", 2)]
    for _ in range(11):
        daemon.server.advance(1)
    assert envelopes(client) == [notice("heartbeat", 2)]  # and again, one per interval


def test_no_heartbeat_while_the_first_fetch_is_pending():
    """Before the position is settled there is nothing to repeat: no heartbeat."""
    daemon = Daemon(broker=SlowHistory, limits=Limits(ping_interval_seconds=5, pong_timeout_seconds=5))
    slow = daemon.broker
    client = daemon.connect()
    for _ in range(12):
        daemon.server.advance(1)
    assert client.received() == []
    slow.answer_now()
    assert envelopes(client) == [notice("subscribed", 0)]


def test_a_closed_member_leaves_the_heartbeat_tick():
    """Members leave the factory's tick when their connection ends (nothing grows per closed connection)."""
    daemon = Daemon()
    clients = [daemon.connect() for _ in range(3)]
    assert len(daemon.chat.heartbeats()) == 3
    for client in clients:
        client.close()
    daemon.server.pump()
    assert len(daemon.chat.heartbeats()) == 0


# --- options --------------------------------------------------------------------------------------------


def context() -> HandlerContext:
    return HandlerContext(MemoryReactorClock(), MultiService())


@pytest.mark.parametrize(
    ("options", "option", "expected"),
    [
        ({"envelope": "xml"}, "envelope", '"json"'),
        ({"envelope": "json", "overflow": "latest"}, "overflow", '"close" with envelope'),
        ({"envelope": "json", "overflow": "drop-oldest"}, "overflow", '"close" with envelope'),
        ({"envelope": "json", "deliver_to_sender": False}, "deliver_to_sender", "true with envelope"),
        ({"history_size": -1}, "history_size", "an integer from 0 to 1000000"),
        ({"history_size": 1.5}, "history_size", "an integer from 0 to"),
        ({"history_ttl_seconds": 0}, "history_ttl_seconds", "a number from 1.0 to"),
        ({"history_ttl_seconds": "300"}, "history_ttl_seconds", "a number from"),
        ({"replay_buffer_max_bytes": 10}, "replay_buffer_max_bytes", "an integer from 1024 to"),
        ({"history_max_channels": 0}, "history_max_channels", "an integer from 1 to"),
    ],
)
def test_bad_history_and_envelope_options_are_refused_by_name(options, option, expected):
    """Each history bound is an option checked against HubLimits' range; envelope combinations that would gap are refused."""
    with pytest.raises(HandlerOptionsError) as raised:
        build_factory(options, "/chat", context())
    assert raised.value.option == option and expected in raised.value.expected


def test_history_and_envelope_are_off_by_default():
    """No options: no envelope, history_size 0, so publishes are not positioned."""
    factory = build_factory({}, "/chat", context())
    assert factory.settings.envelope is None and factory.settings.hub == HubLimits()
    assert factory.history_limits is None


def test_history_without_envelope_positions_publishes():
    """history_size > 0 alone keeps history (the API gets offsets) while clients still get raw messages."""
    factory = build_factory({"history_size": 5, "history_ttl_seconds": 60}, "/chat", context())
    assert factory.history_limits == HubLimits(history_size=5, history_ttl_seconds=60.0)


def test_an_envelope_factory_needs_a_clock():
    """An envelope endpoint built without the daemon's reactor is refused at once, not at the first heartbeat."""
    with pytest.raises(ValueError, match="needs a reactor"):
        BroadcastFactory(build_factory({"envelope": "json"}, "/chat", context()).settings, "/chat")


@pytest.mark.parametrize(
    ("from_path", "channel", "served"),
    [
        (False, "/chat", True),
        (False, "/chat/room1", False),
        (True, "/chat/room1", True),
        (True, "/chat/", False),
        (True, "/chat", False),
        (True, "/chatroom", False),
    ],
)
def test_serves_channel_matches_what_a_connection_joins(from_path, channel, served):
    """The API's view of which channels an endpoint serves is the one its connections join."""
    factory = build_factory({"channel_from_path": from_path}, "/chat", context())
    assert factory.serves_channel(channel) is served


def test_every_member_is_handed_the_same_frame_and_deflate_members_still_get_the_envelope():
    """Live fan-out hands one SharedMessage to every member; a permessage-deflate member decodes the same JSON."""
    daemon = Daemon()
    plain, compressed = daemon.connect(), daemon.server.connect("/chat/room1", deflate=True)
    assert compressed.deflate
    envelopes(plain), envelopes(compressed)
    handed: list[list[SharedMessage]] = [[], []]
    for sink, client in zip(handed, (plain, compressed), strict=True):
        member = client.handler
        assert isinstance(member, EnvelopeMember)
        send = member._send
        member._send = lambda message, send=send, sink=sink: (sink.append(message), send(message))[-1]
    daemon.publish("shared")
    assert len(handed[0]) == len(handed[1]) == 1 and handed[0][0] is handed[1][0]
    expected = [{"channel": "/chat/room1", "epoch": EPOCH, "offset": 1, "data": "shared"}]
    assert envelopes(plain) == expected and envelopes(compressed) == expected
