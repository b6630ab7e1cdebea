"""The workers' relay (wsdaemon.broker.relay): two workers' brokers and the main process's hub, wired in memory."""

from __future__ import annotations

import pytest
from twisted.logger import capturedLogs

from wsdaemon.broker.relay import RelayHub, RelayLink, pack, relay_broker
from wsdaemon.core.frames import Opcode, SharedMessage
from wsdaemon.workers.channel import MAX_MESSAGE_BYTES, ChannelError, MessageDecoder, MessageKind, encode


class Member:
    def __init__(self):
        self.got = []

    def deliver(self, message):
        self.got.append(message.payload)


class Host:
    """A main process with ``count`` workers; every message is held until :meth:`pump` (like pipes)."""

    def __init__(self, count: int = 2) -> None:
        self.hub = RelayHub()
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
