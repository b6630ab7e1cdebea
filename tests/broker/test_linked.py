"""The cross-process broker logic (wsdaemon.broker.linked) over a fake link: no sockets, no reactor."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from twisted.internet.defer import Deferred, succeed
from twisted.logger import capturedLogs

from wsdaemon.broker import LinkState, PublishRefused, Route
from wsdaemon.broker.linked import LinkedBroker
from wsdaemon.broker.payload import decode, encode, encode_plain
from wsdaemon.core.frames import Opcode, SharedMessage

ORIGIN = b"ourself!"
OTHER = b"another!"


@dataclass
class FakeLink:
    """Records what the broker asks; the test plays Redis by calling the broker's link_* methods."""

    description: str = "fake://"
    published: list[tuple[str, bytes]] = field(default_factory=list)
    subscribes: list[str] = field(default_factory=list)
    unsubscribes: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    def start(self, broker):
        self.broker = broker

    def stop(self) -> Deferred[None]:
        return succeed(None)

    def publish(self, channel, data):
        self.published.append((channel, data))

    def subscribe(self, channel):
        self.subscribes.append(channel)

    def unsubscribe(self, channel):
        self.unsubscribes.append(channel)

    def members_changed(self, channel, count):
        self.counts[channel] = count

    def presence(self, channel):
        return succeed(self.counts.get(channel, 0) + 5)

    def echo_all(self):
        """Redis delivers everything published so far back to us, in order."""
        published, self.published = self.published, []
        for channel, data in published:
            self.broker.link_message(channel, data)


class Member:
    def __init__(self):
        self.got: list[object] = []
        self.messages: list[SharedMessage] = []

    def deliver(self, message):
        self.messages.append(message)
        self.got.append(message.payload.decode() if message.opcode == Opcode.TEXT else message.payload)


def text(value: str) -> SharedMessage:
    return SharedMessage(Opcode.TEXT, value.encode())


def up_broker(max_pending: int = 3) -> tuple[LinkedBroker, FakeLink]:
    link = FakeLink()
    broker = LinkedBroker(link, max_pending, ORIGIN)
    broker.start()
    broker.link_up()
    return broker, link


def test_own_messages_are_delivered_when_they_come_back_once():
    """While up, a message published here reaches local members when Redis hands it back, once, the same object."""
    broker, link = up_broker()
    member = Member()
    broker.subscribe("/c", member)
    broker.link_subscribed("/c")
    message = text("hi")
    broker.publish("/c", message)
    assert member.got == []
    link.echo_all()
    link.echo_all()
    assert member.got == ["hi"] and member.messages[0] is message


def test_every_process_sees_the_order_redis_gave():
    """Messages of ours and of another process are delivered in the order they come back from Redis."""
    broker, link = up_broker()
    member = Member()
    broker.subscribe("/c", member)
    broker.link_subscribed("/c")
    broker.publish("/c", text("mine-1"))
    broker.link_message("/c", encode(Opcode.TEXT, b"theirs-1", OTHER, 1))
    link.echo_all()
    broker.link_message("/c", encode_plain(Opcode.BINARY, b"\x00cli"))
    assert member.got == ["theirs-1", "mine-1", b"\x00cli"]


def test_exclude_skips_only_the_sender_here():
    """deliver_to_sender = false: the sender is skipped when its message comes back, the others get it."""
    broker, link = up_broker()
    sender, other = Member(), Member()
    for member in (sender, other):
        broker.subscribe("/c", member)
    broker.link_subscribed("/c")
    broker.publish("/c", text("x"), exclude=sender)
    link.echo_all()
    assert (sender.got, other.got) == ([], ["x"])


def test_before_the_subscription_is_confirmed_messages_are_delivered_at_once_and_not_twice():
    """A message on a channel Redis has not confirmed yet goes to members now, and is skipped when it comes back."""
    broker, link = up_broker()
    member = Member()
    broker.subscribe("/c", member)
    broker.publish("/c", text("early"))
    assert member.got == ["early"]
    broker.link_subscribed("/c")
    link.echo_all()
    assert member.got == ["early"]


def test_a_lost_own_message_is_delivered_before_a_later_one_comes_back():
    """If an earlier message of ours never comes back (subscribe race), it is delivered, in order, before the next."""
    broker, link = up_broker()
    member = Member()
    broker.subscribe("/c", member)
    broker.link_subscribed("/c")
    broker.publish("/c", text("lost"))
    broker.publish("/c", text("back"))
    link.published.pop(0)
    link.echo_all()
    assert member.got == ["lost", "back"]


def test_while_down_members_here_get_messages_at_once_and_they_wait_for_the_others():
    """Redis down: local delivery goes on; the messages are queued and sent in order when it is back."""
    link = FakeLink()
    broker = LinkedBroker(link, 10, ORIGIN)
    broker.start()
    member = Member()
    broker.subscribe("/c", member)
    results = [broker.publish("/c", text(f"m{i}")) for i in range(3)]
    assert member.got == ["m0", "m1", "m2"]
    assert [r.result.route for r in results] == [Route.QUEUED] * 3
    assert link.published == []
    broker.link_up()
    assert link.subscribes == ["/c"]
    assert [decode(data).data for _, data in link.published] == [b"m0", b"m1", b"m2"]
    link.echo_all()
    assert member.got == ["m0", "m1", "m2"]


def test_a_full_queue_refuses_backends_and_keeps_members_local():
    """Over max_pending_messages: the API's publish fails with PublishRefused; a member's reaches this process only."""
    link = FakeLink()
    broker = LinkedBroker(link, 1, ORIGIN)
    member = Member()
    broker.subscribe("/c", member)
    broker.publish("/c", text("queued"))
    with capturedLogs() as events:
        refused = broker.publish("/c", text("api"), local_fallback=False)
        kept = [broker.publish("/c", text(f"member{i}")) for i in range(2)]
    failure = refused.result
    refused.addErrback(lambda f: None)
    assert failure.check(PublishRefused) and "max_pending_messages" in str(failure.value)
    assert [d.result.route for d in kept] == [Route.LOCAL_ONLY] * 2
    assert member.got == ["queued", "member0", "member1"]
    assert len(events) == 1 and "reach this process only" in events[0]["log_format"]
    assert len(broker.pending) == 1


def test_link_down_delivers_what_was_in_flight_and_logs_once():
    """When Redis goes away, messages sent but not back are delivered here; the loss is logged once."""
    broker, _link = up_broker()
    member = Member()
    broker.subscribe("/c", member)
    broker.link_subscribed("/c")
    broker.publish("/c", text("in flight"))
    with capturedLogs() as events:
        broker.link_down("the connection closed")
        for _ in range(5):
            broker.link_failed("connection refused")
    assert member.got == ["in flight"]
    assert broker.state is LinkState.DOWN
    assert len(events) == 1 and "connection lost" in events[0]["log_format"]


def test_failed_attempts_are_logged_once_until_the_link_is_up():
    """Retries that keep failing log one line; after a success, a new failure is logged again."""
    link = FakeLink()
    broker = LinkedBroker(link, 5, ORIGIN)
    with capturedLogs() as events:
        for _ in range(10):
            broker.link_failed("connection refused")
        broker.link_up()
        broker.link_down("closed")
    formats = [event["log_format"] for event in events]
    assert [("cannot connect" in f, "connected" in f, "lost" in f) for f in formats] == [
        (True, False, False),
        (False, True, False),
        (False, False, True),
    ]


def test_observers_hear_each_change_once():
    """A link observer is told up and down once each, in order."""
    link = FakeLink()
    broker = LinkedBroker(link, 5, ORIGIN)
    seen = []
    broker.addLinkObserver(seen.append)
    broker.link_failed("x")
    broker.link_up()
    broker.link_down("y")
    broker.link_down("y")
    assert seen == [LinkState.UP, LinkState.DOWN]


def test_first_member_subscribes_last_member_unsubscribes():
    """The link subscribes a channel once, for its first member here, and unsubscribes it after the last leaves."""
    broker, link = up_broker()
    first, second = Member(), Member()
    broker.subscribe("/c", first)
    broker.subscribe("/c", second)
    broker.unsubscribe("/c", first)
    assert (link.subscribes, link.unsubscribes, link.counts["/c"]) == (["/c"], [], 1)
    broker.unsubscribe("/c", second)
    assert (link.unsubscribes, link.counts["/c"]) == (["/c"], 0)


def test_malformed_payloads_are_dropped_and_logged_once():
    """Payloads that are not messages are dropped; the first is logged, the rest only counted."""
    broker, _ = up_broker()
    member = Member()
    broker.subscribe("/c", member)
    with capturedLogs() as events:
        for _ in range(3):
            broker.link_message("/c", b"no marker")
    assert member.got == [] and broker.malformed == 3 and len(events) == 1


@pytest.mark.parametrize("state", ["up", "down"])
def test_presence_is_everyone_while_up_and_this_process_while_down(state):
    """Presence counts every process while the link is up; while down, only this one, marked incomplete."""
    link = FakeLink()
    broker = LinkedBroker(link, 5, ORIGIN)
    broker.subscribe("/c", Member())
    if state == "up":
        broker.link_up()
    presence = broker.presence("/c").result
    assert (presence.members, presence.complete) == ((6, True) if state == "up" else (1, False))
