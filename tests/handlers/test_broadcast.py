"""The broadcast handler (wsdaemon.handlers.broadcast), through wsdaemon.testing: no sockets, no reactor."""

from __future__ import annotations

import pytest
from twisted.application.service import MultiService
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import capturedLogs

import wsdaemon.core.frames
from wsdaemon.broker import InProcessBroker
from wsdaemon.core import Limits
from wsdaemon.core.frames import Opcode, SharedMessage
from wsdaemon.handlers.broadcast import BroadcastFactory, BroadcastProtocol, build_factory
from wsdaemon.interfaces import HandlerContext, HandlerOptionsError
from wsdaemon.plugins import discover_handlers
from wsdaemon.testing import MemoryClient, MemoryServer

#: A small write buffer, so that a client that stops reading is paused after a few messages.
SMALL_BUFFER = Limits(write_buffer_high_bytes=1024)


def chat(options: dict[str, object] | None = None, limits: Limits = SMALL_BUFFER) -> MemoryServer:
    """A daemon in memory with a broadcast endpoint at /chat."""
    return MemoryServer({"/chat": build_factory(options or {}, "/chat")}, limits=limits)


def member(client: MemoryClient) -> BroadcastProtocol:
    handler = client.handler
    assert isinstance(handler, BroadcastProtocol)
    return handler


def publish(sender: MemoryClient, count: int, size: int = 100, start: int = 0) -> list[str]:
    """Send ``count`` numbered text messages of ``size`` characters; returns them."""
    messages = [f"{n:06d}".ljust(size, ".") for n in range(start, start + count)]
    for message in messages:
        sender.send_text(message)
    return messages


# --- options ---------------------------------------------------------------------------------


def test_defaults_need_no_options():
    """With no options a member gets everything, the sender too, and a full queue closes the member with 1008."""
    settings = build_factory({}, "/chat").settings
    assert (
        settings.channel_from_path,
        settings.deliver_to_sender,
        settings.overflow,
        settings.overflow_close_code,
    ) == (
        False,
        True,
        "close",
        1008,
    )
    assert (settings.queue_max_messages, settings.queue_max_bytes) == (1000, 1024 * 1024)


@pytest.mark.parametrize(
    ("option", "value", "expected"),
    [
        ("channel_from_path", "yes", "true or false"),
        ("deliver_to_sender", 1, "true or false"),
        ("queue_max_messages", 0, "an integer from 1 to"),
        ("queue_max_messages", True, "an integer from 1 to"),
        ("queue_max_bytes", 100, "an integer from 1024 to"),
        ("queue_max_bytes", 1.5, "an integer from 1024 to"),
        ("overflow", "block", '"close", "drop-oldest", "latest"'),
        ("overflow_close_code", 1011, "1008 (policy violation) or 1013"),
        ("overflow_close_code", 1009, "1008 (policy violation) or 1013"),
    ],
)
def test_bad_option_is_reported_with_what_was_expected(option, value, expected):
    """A wrong-typed or out-of-range option raises HandlerOptionsError naming the option and the expectation."""
    with pytest.raises(HandlerOptionsError) as raised:
        build_factory({option: value}, "/chat")
    assert raised.value.option == option
    assert expected in raised.value.expected
    assert raised.value.got == value


def test_plugin_declares_every_option_the_module_reads():
    """Each option the plugin descriptor lists is accepted by the module, and an unknown one is refused by name."""
    plugin = discover_handlers()["broadcast"]
    values = {
        "channel_from_path": True,
        "deliver_to_sender": False,
        "queue_max_messages": 5,
        "queue_max_bytes": 2048,
        "overflow": "latest",
        "overflow_close_code": 1013,
        "channels_claim": "rooms",
        "envelope": "json",
        "history_size": 10,
        "history_ttl_seconds": 60,
        "history_max_bytes": 4096,
        "history_total_max_bytes": 65536,
        "history_max_channels": 100,
        "replay_buffer_max_messages": 50,
        "replay_buffer_max_bytes": 8192,
    }
    assert set(plugin.options) == set(values)
    values["overflow"], values["deliver_to_sender"] = "close", True  # what an envelope endpoint needs
    factory = plugin.buildFactory(values, "/chat", HandlerContext(MemoryReactorClock(), MultiService()))
    assert factory.settings.envelope == "json" and factory.settings.hub.history_size == 10
    assert factory.settings.hub.history_ttl_seconds == 60.0 and factory.settings.hub.replay_buffer_max_bytes == 8192
    values["overflow"] = "latest"
    values.pop("envelope")
    factory = plugin.buildFactory(values, "/chat")
    assert factory.settings.overflow == "latest" and factory.settings.overflow_close_code == 1013
    assert factory.settings.channels_claim == "rooms"
    with pytest.raises(HandlerOptionsError) as raised:
        plugin.buildFactory({"overflw": "close"}, "/chat")
    assert raised.value.option == "overflw"


# --- delivery ----------------------------------------------------------------------------------


def test_every_member_gets_every_message_in_order_sender_included():
    """Messages from several members reach every member (sender included) in the order the channel got them."""
    server = chat()
    clients = [server.connect("/chat") for _ in range(3)]
    clients[0].send_text("a1")
    clients[1].send_bytes(b"b1")
    clients[0].send_text("a2")
    clients[2].send_text("c1")
    for client in clients:
        assert client.received() == ["a1", b"b1", "a2", "c1"]


def test_deliver_to_sender_false_skips_the_sender():
    """With deliver_to_sender = false a member does not get its own messages back."""
    server = chat({"deliver_to_sender": False})
    alice, bob = server.connect("/chat"), server.connect("/chat")
    alice.send_text("from alice")
    assert alice.received() == []
    assert bob.received() == ["from alice"]


def test_members_get_only_what_is_published_after_they_join():
    """A late joiner does not get earlier messages (there is no history)."""
    server = chat()
    early = server.connect("/chat")
    early.send_text("before")
    late = server.connect("/chat")
    early.send_text("after")
    assert late.received() == ["after"]


def test_channel_from_path_keeps_rooms_apart():
    """With channel_from_path, /chat/red and /chat/blue are separate channels; /chat/red/1 is a third."""
    server = chat({"channel_from_path": True})
    red, blue, sub = server.connect("/chat/red"), server.connect("/chat/blue?x=1"), server.connect("/chat/red/1")
    red.send_text("to red")
    blue.send_text("to blue")
    assert (red.received(), blue.received(), sub.received()) == (["to red"], ["to blue"], [])


@pytest.mark.parametrize("path", ["/chat", "/chat/", "/chat/a//b"])
def test_channel_from_path_needs_a_channel_name(path):
    """With channel_from_path, an upgrade that names no channel (or an empty segment) is refused with 404."""
    client = chat({"channel_from_path": True}).connect(path)
    assert client.status == 404
    assert not client.accepted


def test_without_channel_from_path_a_sub_path_is_404():
    """Without channel_from_path, /chat/x is not a channel: 404 before the 101; /chat/ is the endpoint itself."""
    server = chat()
    assert server.connect("/chat/x").status == 404
    assert server.connect("/chat/").status == 101


def test_empty_channel_is_forgotten():
    """A channel is named by the URL path (/chat/room) and exists while it has members; when the last one leaves it is gone."""
    factory = build_factory({"channel_from_path": True}, "/chat")
    server = MemoryServer({"/chat": factory})
    first, second = server.connect("/chat/room"), server.connect("/chat/room")
    members = factory.broker.members
    assert list(members.channels) == ["/chat/room"]
    first.close()
    assert members.count("/chat/room") == 1
    second.disconnect()
    assert members.channels == {}


def test_endpoints_sharing_a_broker_keep_their_channels_apart():
    """Two endpoints on one broker never share a channel: /a/x and /b/x are different names."""
    broker = InProcessBroker()
    context = HandlerContext(MemoryReactorClock(), MultiService(), broker)
    first = build_factory({"channel_from_path": True}, "/a", context)
    second = build_factory({"channel_from_path": True}, "/b", context)
    assert first.broker is second.broker is broker
    server = MemoryServer({"/a": first, "/b": second})
    on_a, on_b = server.connect("/a/x"), server.connect("/b/x")
    on_a.send_text("for a")
    assert (on_a.received(), on_b.received()) == (["for a"], [])
    assert sorted(broker.members.channels) == ["/a/x", "/b/x"]


def test_publish_from_inside_the_daemon_reaches_members():
    """BroadcastFactory.publish sends text or bytes to a channel's members (e.g. from a timer)."""
    factory = build_factory({}, "/chat")
    client = MemoryServer({"/chat": factory}).connect("/chat")
    factory.publish("/chat", "tick")
    factory.publish("/chat", b"\x01")
    factory.publish("/nobody", "lost")
    assert client.received() == ["tick", b"\x01"]


# --- encoded once ---------------------------------------------------------------------------------


def test_a_message_is_framed_once_for_all_members(monkeypatch):
    """Publishing to 5 members encodes the frame once: every member is written the same bytes."""
    calls = []
    real = wsdaemon.core.frames.encode_message

    def counting(opcode, payload, fragment_bytes):
        calls.append(payload)
        return real(opcode, payload, fragment_bytes)

    monkeypatch.setattr(wsdaemon.core.frames, "encode_message", counting)
    server = chat()
    clients = [server.connect("/chat") for _ in range(5)]
    clients[0].send_text("hello everyone")
    assert calls == [b"hello everyone"]
    assert all(client.received() == ["hello everyone"] for client in clients)


def test_members_of_a_compressing_connection_get_the_message_encoded_for_them():
    """A member that negotiated permessage-deflate gets the message compressed for its connection, and reads it."""
    server = chat()
    plain, compressing = server.connect("/chat"), server.connect("/chat", deflate=True)
    assert compressing.deflate and not plain.deflate
    compressing.pause_reading()
    text = "news for the whole channel, " * 4  # over min_size_bytes (64): worth compressing
    plain.send_text(text)
    wire = compressing.transport.value()
    shared = b"".join(SharedMessage(Opcode.TEXT, text.encode()).frames(SMALL_BUFFER.fragment_outgoing_bytes))
    assert wire[0] == 0xC1 and wire != shared  # FIN, RSV1, text: its own frame, not the shared one
    compressing.resume_reading()
    assert compressing.received() == [text] and plain.received() == [text]


def test_plain_connections_share_frames(monkeypatch):
    """Members without an extension are all written the one shared encoding, byte for byte."""
    calls = []
    real = wsdaemon.core.frames.encode_message
    monkeypatch.setattr(
        wsdaemon.core.frames, "encode_message", lambda *args, **kw: calls.append(args[1]) or real(*args, **kw)
    )
    server = chat()
    members = [server.connect("/chat") for _ in range(3)]
    compressing = server.connect("/chat", deflate=True)
    for client in members:
        client.pause_reading()
    text = "the same bytes on every plain wire, whatever the compressing member gets"
    members[0].send_text(text)
    expected = b"".join(real(Opcode.TEXT, text.encode(), SMALL_BUFFER.fragment_outgoing_bytes))
    assert calls == [text.encode()]
    assert [client.transport.value() for client in members] == [expected] * 3
    assert compressing.received() == [text]


class PlainTransport:
    """A transport with only Twisted's API: no sendSharedMessage."""

    def __init__(self):
        self.sent = []

    def sendTextMessage(self, text):
        self.sent.append(text)

    def sendBytesMessage(self, data):
        self.sent.append(data)

    def attachProducer(self, producer):
        self.producer = producer


def test_transport_without_shared_messages_gets_plain_sends():
    """On a transport without sendSharedMessage (e.g. twisted.web.websocket) members get sendTextMessage/sendBytesMessage."""
    factory = BroadcastFactory(build_factory({}, "/chat").settings, "/chat")
    handler = BroadcastProtocol(factory, "/chat")
    transport = PlainTransport()
    handler.negotiationStarted(transport)
    handler.negotiationFinished()
    handler.textMessageReceived("hi")
    handler.bytesMessageReceived(b"\x00")
    assert transport.sent == ["hi", b"\x00"]
    assert transport.producer is handler


# --- slow members ------------------------------------------------------------------------------------


def test_slow_member_is_closed_with_1008_and_the_others_get_everything():
    """A member that stops reading is closed with 1008 once its queue is full; the rest get every message in order."""
    server = chat({"queue_max_messages": 10})
    publisher, slow, *others = [server.connect("/chat") for _ in range(4)]
    slow.pause_reading()
    with capturedLogs() as events:
        sent = publish(publisher, 200)
    for client in [publisher, *others]:
        assert client.received() == sent
    assert not member(slow).joined
    slow.resume_reading()
    got = slow.received()
    assert got == sent[: len(got)] and len(got) < len(sent)
    assert slow.close_code == 1008
    assert any("not keeping up" in event.get("log_format", "") for event in events)
    # The queue that overflowed (one over queue_max_messages) is what /metrics counts as dropped.
    assert member(slow).factory.dropped == {"close": 11}


def test_overflow_close_code_1013_is_used_when_configured():
    """overflow_close_code = 1013 closes a slow member with 1013 (try again later)."""
    server = chat({"queue_max_messages": 5, "overflow_close_code": 1013})
    publisher, slow = server.connect("/chat"), server.connect("/chat")
    slow.pause_reading()
    with capturedLogs():
        publish(publisher, 100)
    slow.resume_reading()
    assert slow.close_code == 1013


def test_queue_byte_bound_closes_before_the_message_bound():
    """queue_max_bytes bounds a slow member's queue even when queue_max_messages is far away."""
    server = chat({"queue_max_messages": 1_000_000, "queue_max_bytes": 4096})
    publisher, slow = server.connect("/chat"), server.connect("/chat")
    slow.pause_reading()
    handler = member(slow)
    with capturedLogs():
        for n in range(300):
            publisher.send_text(f"{n:06d}".ljust(100, "."))
            assert handler.queued_bytes <= 4096
    slow.resume_reading()
    assert slow.close_code == 1008


def test_slow_member_queue_stays_within_its_bounds():
    """Whatever is published, a paused member never holds more than queue_max_messages / queue_max_bytes."""
    server = chat({"queue_max_messages": 7, "queue_max_bytes": 2048, "overflow": "drop-oldest"})
    publisher, slow = server.connect("/chat"), server.connect("/chat")
    slow.pause_reading()
    handler = member(slow)
    for n in range(500):
        publisher.send_text("x" * (n % 300))
        assert len(handler.queue) <= 7 and handler.queued_bytes <= 2048


def test_drop_oldest_keeps_the_newest_messages_in_order():
    """overflow = drop-oldest: after catching up, the slow member has an in-order subsequence ending with the newest."""
    server = chat({"queue_max_messages": 5, "overflow": "drop-oldest"})
    publisher, slow = server.connect("/chat"), server.connect("/chat")
    slow.pause_reading()
    sent = publish(publisher, 300)
    slow.resume_reading()
    got = slow.received()
    assert got[-5:] == sent[-5:]
    assert got == sorted(got) and set(got) <= set(sent) and len(got) < len(sent)
    assert not slow.closed
    assert member(slow).dropped == len(sent) - len(got)
    assert member(slow).factory.dropped == {"drop-oldest": len(sent) - len(got)}  # for /metrics, by policy


def test_latest_keeps_only_the_newest_message():
    """overflow = latest (tickers): a paused member holds only the newest message, and gets it when it reads again."""
    server = chat({"queue_max_messages": 1000, "queue_max_bytes": 4096, "overflow": "latest"})
    publisher, slow = server.connect("/chat"), server.connect("/chat")
    slow.pause_reading()
    sent = publish(publisher, 300)
    handler = member(slow)
    assert len(handler.queue) <= 1
    slow.resume_reading()
    got = slow.received()
    assert got[-1] == sent[-1]
    assert got == sorted(got) and len(got) < len(sent)
    assert handler.factory.dropped == {"latest": handler.dropped} and handler.dropped > 0


def test_message_bigger_than_the_queue_is_dropped_for_a_paused_member():
    """Under drop-oldest, a message larger than queue_max_bytes cannot be queued for a paused member: it is dropped."""
    server = chat({"queue_max_bytes": 1024, "overflow": "drop-oldest"})
    publisher, slow = server.connect("/chat"), server.connect("/chat")
    slow.pause_reading()
    publish(publisher, 40)  # enough to pause the slow member
    handler = member(slow)
    assert handler.paused
    publisher.send_text("y" * 5000)
    assert handler.queued_bytes <= 1024 and all(len(m.payload) < 5000 for m in handler.queue)


def test_member_resumes_in_order_after_catching_up():
    """A member that falls behind briefly (queue not full) gets every message, in order, once it reads again."""
    server = chat({"queue_max_messages": 1000})
    publisher, slow = server.connect("/chat"), server.connect("/chat")
    slow.pause_reading()
    sent = publish(publisher, 100)
    assert member(slow).paused
    slow.resume_reading()
    assert slow.received() == sent
    more = publish(publisher, 3, start=100)
    assert slow.received() == more
