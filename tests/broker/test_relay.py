"""The workers' relay (wsdaemon.broker.relay): two workers' brokers and the main process's hub, wired in memory."""

from __future__ import annotations

import pytest
from twisted.internet.task import Clock
from twisted.logger import capturedLogs

from tests.broker.members import Positioned
from wsdaemon.broker import HistoryUnavailable
from wsdaemon.broker.payload import positioned_header
from wsdaemon.broker.relay import RelayHub, RelayLink, pack, pack_limits, relay_broker, unpack_limits
from wsdaemon.core.frames import Opcode, SharedMessage
from wsdaemon.hub import Fetch, HubLimits, RecoveryQuery
from wsdaemon.workers.channel import MAX_MESSAGE_BYTES, ChannelError, MessageDecoder, MessageKind, encode


class Member:
    def __init__(self):
        self.got = []

    def deliver(self, message):
        self.got.append(message.payload)


class Host:
    """A main process with ``count`` workers; every message is held until :meth:`pump` (like pipes)."""

    def __init__(self, count: int = 2) -> None:
        self.hub = RelayHub(Clock())
        self.up: list[tuple[int, bytes]] = []
        self.down: dict[int, list[bytes]] = {}
        self.brokers = []
        for worker in range(1, count + 1):
            broker = relay_broker(lambda data, worker=worker: self.up.append((worker, data)), 100)
            self.hub.attach(worker, lambda data, worker=worker: self.down.setdefault(worker, []).append(data))
            broker.start()
            self.brokers.append(broker)

    def pump(self) -> None:
        while self.up or any(self.down.values()):
            up, self.up = self.up, []
            for worker, data in up:
                for kind, body in MessageDecoder().feed(data):
                    self.hub.received(worker, kind, body)
            for worker, messages in list(self.down.items()):
                self.down[worker] = []
                for data in messages:
                    for kind, body in MessageDecoder().feed(data):
                        assert self.brokers[worker - 1].link.received(kind, body)


def text(value: str) -> SharedMessage:
    return SharedMessage(Opcode.TEXT, value.encode())


def test_members_on_every_worker_get_every_message_in_the_hubs_order():
    """Messages published on two workers reach members of both, all in the one order the hub read them."""
    host = Host()
    members = [Member(), Member()]
    for broker, member in zip(host.brokers, members, strict=True):
        broker.subscribe("/c", member)
    host.pump()
    host.brokers[0].publish("/c", text("one-1"))
    host.brokers[1].publish("/c", text("two-1"))
    host.brokers[0].publish("/c", SharedMessage(Opcode.BINARY, b"\x00one-2"))
    host.pump()
    assert members[0].got == members[1].got
    assert sorted(members[0].got) == [b"\x00one-2", b"one-1", b"two-1"]
    assert members[0].got.index(b"one-1") < members[0].got.index(b"\x00one-2")


def test_a_worker_without_members_of_a_channel_is_not_sent_its_messages():
    """The hub writes a channel's messages only to workers subscribed to it."""
    host = Host()
    host.brokers[0].subscribe("/c", Member())
    host.pump()
    host.brokers[0].publish("/c", text("x"))
    (published,) = host.up
    host.hub.received(*_decoded(published))
    assert host.down.get(2, []) == [] and len(host.down[1]) == 1


def _decoded(item):
    worker, data = item
    ((kind, body),) = MessageDecoder().feed(data)
    return worker, kind, body


def test_presence_sums_every_workers_members_and_forgets_a_dead_worker():
    """Presence is the sum of the workers' counts; a worker that exits drops out of it and of the subscriptions."""
    host = Host()
    host.brokers[0].subscribe("/c", Member())
    for _ in range(2):
        host.brokers[1].subscribe("/c", Member())
    host.pump()
    answer = host.brokers[0].presence("/c")
    host.pump()
    assert (answer.result.members, answer.result.complete) == (3, True)
    host.hub.forget(2)
    assert host.hub.subscribers == {"/c": {1: None}} and host.hub.counts == {"/c": {1: 1}}


def test_the_last_member_leaving_unsubscribes_the_worker():
    """When a worker's last member of a channel leaves, the hub stops sending it that channel."""
    host = Host()
    member = Member()
    host.brokers[0].subscribe("/c", member)
    host.pump()
    host.brokers[0].unsubscribe("/c", member)
    host.pump()
    assert host.hub.subscribers == {} and host.hub.counts == {}


@pytest.mark.parametrize(
    ("kind", "body"),
    [
        (MessageKind.PUBLISH, b"\x00"),
        (MessageKind.SUBSCRIBE, b"\x00\x09short"),
        (MessageKind.COUNT, pack("/c", b"\x01")),
        (MessageKind.UNSUBSCRIBE, b"\x00\x02\xff\xfe"),
    ],
)
def test_a_malformed_relay_body_is_a_channel_error(kind, body):
    """A relay body too short, with a name that is not UTF-8, or a count of the wrong size raises ChannelError."""
    with pytest.raises(ChannelError):
        RelayHub().received(1, kind, body)


def test_messages_that_are_not_the_relays_are_left_to_the_caller():
    """NOTIFY and HELLO are not relay messages: both ends say so and do nothing."""
    assert RelayHub().received(1, MessageKind.NOTIFY, b"READY=1") is False
    assert RelayLink(lambda data: None).received(MessageKind.HELLO, b"{}") is False


def test_a_message_too_big_for_the_channel_reaches_its_own_worker_only():
    """Over the channel's limit a message reaches the members of its worker, with one warning."""
    sent = []
    broker = relay_broker(sent.append, 10)
    broker.start()
    member = Member()
    broker.subscribe("/c", member)
    sent.clear()
    with capturedLogs() as events:
        for _ in range(2):
            broker.publish("/c", SharedMessage(Opcode.BINARY, b"x" * MAX_MESSAGE_BYTES))
    assert sent == [] and len(member.got) == 2 and len(events) == 1


def test_encoded_relay_messages_fit_the_channel_framing():
    """A PUBLISH body is the channel name then the payload, in the channel's usual framing."""
    ((kind, body),) = MessageDecoder().feed(encode(MessageKind.PUBLISH, pack("/c", b"tx")))
    assert (kind, body) == (MessageKind.PUBLISH, b"\x00\x02/ctx")


# --- channels with history: the main process keeps it ----------------------------------------------


HISTORY = HubLimits(history_size=5)


def settled(deferred):
    box = []
    deferred.addBoth(box.append)
    assert box, "not answered"
    return box[0]


def test_positioned_publishes_on_two_workers_get_one_sequence_of_offsets_from_the_main_process():
    """The hub positions and keeps each message; every worker's members get them with their positions, one order."""
    host = Host()
    members = [Positioned(), Positioned()]
    for broker, member in zip(host.brokers, members, strict=True):
        broker.subscribe("/c", member)
    host.pump()
    answers = [host.brokers[n % 2].publish("/c", text(f"m{n}"), history=HISTORY) for n in range(4)]
    host.pump()
    positions = [(p.epoch, p.offset) for p in map(settled, answers)]
    epoch = positions[0][0]
    assert positions == [(epoch, n) for n in (1, 2, 3, 4)]
    for member in members:
        assert [(p.epoch, p.offset, p.payload) for p in member.publications] == [
            (epoch, n + 1, f"m{n}".encode()) for n in range(4)
        ]


def test_history_is_read_from_the_main_process_entry_by_entry():
    """A worker's history read gets the state and the kept entries after its offset, from the hub's store."""
    host = Host()
    for n in range(7):
        opcode = Opcode.BINARY if n == 6 else Opcode.TEXT
        host.brokers[0].publish("/c", SharedMessage(opcode, b"m%d" % n), history=HISTORY)
    host.pump()
    plain = host.brokers[1].history("/c", Fetch("/c", None), HISTORY)
    host.pump()
    state, entries = settled(plain)
    assert (state.first_offset, state.last_offset, entries) == (3, 7, [])
    reading = host.brokers[1].history("/c", Fetch("/c", RecoveryQuery(4, state.epoch)), HISTORY)
    host.pump()
    again, entries = settled(reading)
    assert again == state
    assert [(p.epoch, p.offset, p.payload, p.binary) for p in entries] == [
        (state.epoch, 5, b"m4", False),
        (state.epoch, 6, b"m5", False),
        (state.epoch, 7, b"m6", True),
    ]


def test_a_history_read_bigger_than_a_relay_message_arrives_whole():
    """Entries come one per relay message, so history larger than MAX_MESSAGE_BYTES still arrives complete."""
    host = Host()
    big = HubLimits(history_size=4, history_max_bytes=2**32, history_total_max_bytes=2**40)
    size = MAX_MESSAGE_BYTES // 2
    for n in range(4):
        host.brokers[0].publish("/c", SharedMessage(Opcode.BINARY, bytes([n]) * size), history=big)
    host.pump()
    reading = host.brokers[1].history("/c", Fetch("/c", RecoveryQuery(0, None)), big)
    host.pump()
    _, entries = settled(reading)
    assert [(p.offset, len(p.payload), p.payload[:1]) for p in entries] == [(n + 1, size, bytes([n])) for n in range(4)]


def test_a_positioned_message_too_big_for_the_relay_is_refused():
    """Over the relay's limit a message cannot be positioned: HistoryUnavailable, nothing sent."""
    host = Host()
    answer = host.brokers[0].publish("/c", SharedMessage(Opcode.BINARY, b"x" * MAX_MESSAGE_BYTES), history=HISTORY)
    failure = settled(answer)
    assert failure.check(HistoryUnavailable) and "relay limit" in str(failure.value)
    assert host.up == []


def test_the_hubs_history_outlives_a_worker_restart():
    """A worker that restarts (forgotten, attached again) reads the same epoch and history from the hub."""
    host = Host()
    first = settled(_published(host, "a"))
    host.hub.forget(1)
    host.hub.attach(1, lambda data: host.down.setdefault(1, []).append(data))
    reading = host.brokers[0].history("/c", Fetch("/c", RecoveryQuery(0, first.epoch)), HISTORY)
    host.pump()
    state, entries = settled(reading)
    assert state.epoch == first.epoch and [p.payload for p in entries] == [b"a"]


def _published(host, value):
    answer = host.brokers[0].publish("/c", text(value), history=HISTORY)
    host.pump()
    return answer


def test_the_hubs_expiry_timer_drops_idle_history():
    """start() runs the expiry timer on the hub's clock; stop() ends it."""
    clock = Clock()
    hub = RelayHub(clock)
    hub.start()
    hub.received(1, MessageKind.POSITION, _position_body(HubLimits(history_size=5, history_ttl_seconds=5.0)))
    store = hub.history.store(HubLimits(history_size=5, history_ttl_seconds=5.0))
    assert store.payload_bytes == 1
    clock.advance(6)
    assert store.payload_bytes == 0
    hub.stop()
    assert clock.getDelayedCalls() == []


def _position_body(limits, header=None, channel="/c"):
    header = header if header is not None else positioned_header(Opcode.TEXT, b"ourself!", 1)
    return (1).to_bytes(4, "big") + pack_limits(limits) + pack(channel, header + b"x")


def test_history_bounds_cross_the_relay_unchanged():
    """pack_limits/unpack_limits round-trip every bound, float seconds included."""
    limits = HubLimits(history_size=7, history_ttl_seconds=2.5, history_max_bytes=100, history_max_channels=3)
    assert unpack_limits(pack_limits(limits)) == limits


@pytest.mark.parametrize(
    "body",
    [
        b"\x00\x00\x00\x01",  # no bounds
        _position_body(HISTORY, header=b"T" + bytes(16)),  # not a positioned header
        _position_body(HISTORY, header=b"P"),  # a short header
        (1).to_bytes(4, "big") + b"\xff" * 56 + pack("/c", b"P" + bytes(16)),  # bounds that are NaN
    ],
)
def test_a_malformed_position_request_is_a_channel_error(body):
    """A POSITION body without bounds, with bounds out of range or without a positioned header: ChannelError."""
    with pytest.raises(ChannelError):
        RelayHub(Clock()).received(1, MessageKind.POSITION, body)


def test_a_malformed_history_answer_is_a_channel_error():
    """An impossible state or position from the main process is a broken peer."""
    link = RelayLink(lambda data: None)
    with pytest.raises(ChannelError):
        link.received(MessageKind.HISTORY_ANSWER, (1).to_bytes(4, "big") + (5).to_bytes(8, "big") + bytes(8) + b"e1")
    with pytest.raises(ChannelError):
        link.received(MessageKind.POSITION_ANSWER, (1).to_bytes(4, "big") + bytes(8) + b"bad epoch")
