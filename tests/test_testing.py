"""wsdaemon.testing: the in-memory client handler authors test with (no sockets, no running reactor)."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest
from twisted.internet.interfaces import IPushProducer
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import capturedLogs
from zope.interface import implementer

from tests.wire import decode_frames
from wsdaemon.core import Limits
from wsdaemon.handlers.echo import EchoFactory
from wsdaemon.interfaces import ConnectionRejected
from wsdaemon.testing import MemoryServer, MemoryTransport, connect


class Recorder:
    """A handler that records what it is told and can be made to speak or fail."""

    def __init__(self, request: Any) -> None:
        self.request = request
        self.events: list[Any] = []

    def negotiationStarted(self, transport: Any) -> None:
        self.transport = transport
        self.events.append("started")

    def negotiationFinished(self) -> None:
        self.events.append("finished")

    def textMessageReceived(self, message: str) -> None:
        self.events.append(message)
        if message == "raise":
            raise RuntimeError("handler bug")
        if message == "close":
            self.transport.loseConnection(4000)

    def bytesMessageReceived(self, data: bytes) -> None:
        self.events.append(data)

    def pongReceived(self, payload: bytes) -> None:
        self.events.append(("pong", payload))

    def connectionLost(self, reason: Any) -> None:
        self.events.append(("lost", reason.value.code))


class RecorderFactory:
    def __init__(self, reject: ConnectionRejected | None = None) -> None:
        self.reject = reject

    def buildProtocol(self, request: Any) -> Recorder:
        if self.reject is not None:
            raise self.reject
        return Recorder(request)


def test_messages_go_through_the_real_stack_and_back():
    """Text and binary messages reach the handler and its answers come back, in order."""
    client = connect(EchoFactory(), "/echo")
    assert client.accepted and client.status == 101
    client.send_text("héllo")
    client.send_bytes(b"\x00\xff")
    assert client.received() == ["héllo", b"\x00\xff"]
    assert client.received() == []


def test_handler_sees_the_request_and_the_negotiation():
    """The handler gets a real twisted.web request (path, headers, peer) and the negotiation calls in order."""
    client = connect(RecorderFactory(), "/ws/room?x=1", endpoint="/ws", headers=[("X-Token", "abc")], peer="192.0.2.9")
    handler = client.handler
    assert handler.events == ["started", "finished"]
    assert handler.request.uri == b"/ws/room?x=1" and handler.request.postpath == [b"room"]
    assert handler.request.getHeader("x-token") == "abc"
    assert handler.request.getClientAddress().host == "192.0.2.9"


def test_ping_is_answered_by_the_core_and_pongs_reach_the_handler():
    """A client ping gets its pong from the protocol core; the handler sees nothing of it."""
    client = connect(RecorderFactory(), "/ws")
    client.ping(b"are you there")
    assert client.pongs == [b"are you there"]
    assert client.handler.events == ["started", "finished"]


def test_client_close_completes_the_handshake_and_tells_the_handler():
    """close() sends a Close, the daemon echoes it and closes TCP; the handler learns the code."""
    client = connect(RecorderFactory(), "/ws")
    client.close(1001, "going")
    assert client.close_code == 1001 and client.closed
    assert client.handler.events[-1] == ("lost", 1001)


def test_server_close_reaches_the_client():
    """A handler closing with a code is seen by the client, and the handshake completes."""
    client = connect(RecorderFactory(), "/ws")
    client.send_text("close")
    assert client.close_code == 4000 and client.closed


def test_disconnect_is_a_1006_for_the_handler():
    """Dropping TCP without a Close is reported to the handler as 1006."""
    client = connect(RecorderFactory(), "/ws")
    client.disconnect()
    assert client.handler.events[-1] == ("lost", 1006)


def test_handler_exception_closes_with_1011():
    """A handler that raises is closed with 1011, as in the daemon."""
    client = connect(RecorderFactory(), "/ws")
    with capturedLogs():
        client.send_text("raise")
    assert client.close_code == 1011 and client.close_reason == "internal error"


def test_rejected_upgrade_gives_the_status_and_body():
    """A factory raising ConnectionRejected gives the client that HTTP status, headers and body, and no WebSocket."""
    rejection = ConnectionRejected(429, "slow down", [("Retry-After", "7")])
    client = connect(RecorderFactory(reject=rejection), "/ws")
    assert (client.status, client.accepted, client.body) == (429, False, b"slow down\n")
    assert client.response is not None and client.response.get("retry-after") == "7"
    with pytest.raises(AssertionError):
        client.send_text("nobody is there")


def test_subprotocol_is_negotiated_with_the_endpoint():
    """The endpoint's subprotocols are offered; the client learns which one was chosen."""
    client = connect(EchoFactory(), "/ws", subprotocols=["chat.v2", "chat.v1"])
    assert client.subprotocol == "chat.v2"


def test_origin_policy_applies():
    """A browser Origin that is not allowed gets 403, as in the daemon."""
    assert connect(EchoFactory(), "/ws", origin="https://evil.example").status == 403
    assert connect(EchoFactory(), "/ws", origin="https://evil.example", allowed_origins=["*"]).status == 101


@implementer(IPushProducer)
class Firehose:
    """A handler's producer: counts pauses and resumes."""

    def __init__(self) -> None:
        self.paused = 0
        self.resumed = 0

    def pauseProducing(self) -> None:
        self.paused += 1

    def resumeProducing(self) -> None:
        self.resumed += 1

    def stopProducing(self) -> None:
        pass


def test_a_client_that_stops_reading_pauses_the_handlers_producer():
    """pause_reading fills the daemon's write buffer past write_buffer_high_bytes: the producer is paused, then resumed."""
    server = MemoryServer({"/ws": RecorderFactory()}, limits=Limits(write_buffer_high_bytes=1024))
    client = server.connect("/ws")
    producer = Firehose()
    client.handler.transport.attachProducer(producer)
    client.pause_reading()
    for _ in range(20):
        client.handler.transport.sendTextMessage("x" * 100)
    assert (producer.paused, producer.resumed) == (1, 0)
    client.resume_reading()
    assert (producer.paused, producer.resumed) == (1, 1)
    assert len(client.received()) == 20


def test_clients_of_one_server_share_handlers_state_and_read_promptly():
    """Several clients of one MemoryServer reach the same factory; each that reads gets what others caused."""

    class Relay:
        peers: ClassVar[list[Any]] = []

        def buildProtocol(self, request: Any) -> Any:
            relay = self

            class Member(Recorder):
                def negotiationStarted(self, transport: Any) -> None:
                    super().negotiationStarted(transport)
                    relay.peers.append(transport)

                def textMessageReceived(self, message: str) -> None:
                    for peer in relay.peers:
                        peer.sendTextMessage(message)

            return Member(request)

    server = MemoryServer({"/relay": Relay()})
    first, second = server.connect("/relay"), server.connect("/relay")
    first.send_text("to all")
    assert first.received() == ["to all"] and second.received() == ["to all"]


def test_time_moves_only_when_the_test_says():
    """Deadlines run on the server's memory clock: advance() past idle_timeout_seconds closes with 1001."""
    client = connect(EchoFactory(), "/ws", limits=Limits(idle_timeout_seconds=30))
    client.advance(29)
    assert client.close_code is None
    client.advance(31)
    assert client.close_code == 1001


def test_custom_reactor_is_what_handlers_see():
    """A reactor passed to MemoryServer is the request's site.reactor (for handlers that spawn or connect)."""
    reactor = MemoryReactorClock()
    client = connect(RecorderFactory(), "/ws", reactor=reactor)
    assert client.handler.request.site.reactor is reactor


def test_memory_transport_pauses_a_streaming_producer_above_its_buffer_size():
    """MemoryTransport pauses a registered streaming producer past bufferSize and resumes it once read."""
    from twisted.internet.address import IPv4Address

    transport = MemoryTransport(IPv4Address("TCP", "127.0.0.1", 1), IPv4Address("TCP", "127.0.0.1", 2))
    transport.bufferSize = 10
    producer = Firehose()
    transport.registerProducer(producer, True)
    transport.write(b"x" * 10)
    assert producer.paused == 0
    transport.writeSequence([b"y"])
    assert producer.paused == 1
    assert transport.read() == b"x" * 10 + b"y"
    assert producer.resumed == 1


def test_deflate_is_offered_and_accepted_when_asked_for():
    """With deflate=True the client offers permessage-deflate and the daemon's 101 accepts it."""
    client = connect(EchoFactory(), "/echo", deflate=True)
    assert client.accepted and client.deflate
    assert client.response is not None
    accepted = client.response.get("sec-websocket-extensions")
    assert accepted is not None and accepted.split(";")[0].strip() == "permessage-deflate"


def test_without_deflate_nothing_is_offered_or_accepted():
    """By default the client offers no extension, so the daemon accepts none and frames go uncompressed."""
    client = connect(EchoFactory(), "/echo")
    assert client.accepted and not client.deflate
    assert client.response is not None and client.response.get("sec-websocket-extensions") is None
    client.pause_reading()
    client.send_text("a" * 1000)
    assert [(item.rsv, item.payload) for item in decode_frames(client.transport.value(), masked=False)] == [
        (0, b"a" * 1000)
    ]


def test_deflated_messages_round_trip_both_ways():
    """Text and binary messages, several in a row, come back intact through a compressed connection."""
    client = connect(EchoFactory(), "/echo", deflate=True)
    messages: list[str | bytes] = ["héllo " * 200, b"\x00\xff" * 500, "short", "héllo " * 200]
    for message in messages:
        if isinstance(message, str):
            client.send_text(message)
        else:
            client.send_bytes(message)
    assert client.received() == messages
    client.close()
    assert client.close_code == 1000 and client.closed


def test_deflated_frames_really_are_on_the_wire(monkeypatch):
    """What the client sends and what the daemon answers are RSV1 frames, much shorter than the message."""
    client = connect(EchoFactory(), "/echo", deflate=True)
    sent: list[bytes] = []
    deliver = client.protocol.dataReceived
    monkeypatch.setattr(client.protocol, "dataReceived", lambda data: (sent.append(data), deliver(data)))
    client.pause_reading()  # the daemon's answer stays on its transport, to be looked at
    client.send_text("a" * 1000)
    (request,) = decode_frames(b"".join(sent), masked=True)
    (answer,) = decode_frames(client.transport.value(), masked=False)
    for item in (request, answer):
        assert (item.rsv, item.opcode, item.fin) == (0x40, 0x1, True)
        assert len(item.payload) < 100
    client.resume_reading()
    assert client.received() == ["a" * 1000]
