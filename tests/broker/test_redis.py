"""The Redis link (wsdaemon.broker.redis) on a MemoryReactorClock: connections are StringTransports fed RESP by hand."""

from __future__ import annotations

import pytest
from twisted.internet.error import ConnectionDone, ConnectionRefusedError
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.logger import capturedLogs
from twisted.python.failure import Failure

from wsdaemon.broker import LinkState
from wsdaemon.broker.linked import LinkedBroker
from wsdaemon.broker.payload import encode
from wsdaemon.broker.redis import RedisLink
from wsdaemon.config.model import BrokerConfig
from wsdaemon.core.frames import Opcode, SharedMessage

ORIGIN = b"ourself!"
SETTINGS = BrokerConfig(
    "unix:/run/redis.sock", "unix", path="/run/redis.sock", reconnect_initial_seconds=1.0, reconnect_max_seconds=8.0
)


def bulk(*items: bytes) -> bytes:
    """A RESP array of bulk strings, as Redis sends a pub/sub message."""
    return b"*%d\r\n" % len(items) + b"".join(b"$%d\r\n%s\r\n" % (len(item), item) for item in items)


class Member:
    def __init__(self):
        self.got = []

    def deliver(self, message):
        self.got.append(message.payload)


class Harness:
    """A broker on a RedisLink whose connection attempts the test answers."""

    def __init__(self, password: str | None = None, settings: BrokerConfig = SETTINGS) -> None:
        self.reactor = MemoryReactorClock()
        self.link = RedisLink(self.reactor, settings, password, "p1", uniform=lambda: 0.0)
        self.broker = LinkedBroker(self.link, 100, ORIGIN)
        self.connections: list[tuple[object, StringTransport]] = []

    def attempts(self) -> int:
        return len(self.reactor.unixClients)

    def accept(self) -> tuple[object, StringTransport]:
        """The newest attempt connects."""
        _, factory, _, _ = self.reactor.unixClients[-1]
        protocol = factory.buildProtocol(None)
        transport = StringTransport()
        protocol.makeConnection(transport)
        self.connections.append((protocol, transport))
        return protocol, transport

    def refuse(self) -> None:
        """The newest attempt is refused."""
        _, factory, _, _ = self.reactor.unixClients[-1]
        factory.clientConnectionFailed(self.reactor.connectors[-1], Failure(ConnectionRefusedError()))

    def up(self) -> tuple[StringTransport, object, StringTransport]:
        """Both connections accepted: returns the commands transport, the subscriber protocol and transport."""
        self.commands_protocol, commands = self.accept()
        subscriber, subscribed = self.accept()
        return commands, subscriber, subscribed

    def retries(self) -> list[float]:
        """The delays of the scheduled reconnect attempts."""
        now = self.reactor.seconds()
        return [call.getTime() - now for call in self.reactor.getDelayedCalls() if call.func == self.link._connect]

    def lose(self, index: int) -> None:
        protocol, _ = self.connections[index]
        protocol.connectionLost(Failure(ConnectionDone()))


def test_connects_both_connections_then_is_up():
    """The link is up once the command and the subscriber connections are both ready."""
    harness = Harness()
    harness.broker.start()
    harness.accept()
    assert harness.broker.state is LinkState.DOWN and harness.attempts() == 2
    harness.accept()
    assert harness.broker.state is LinkState.UP


def test_refused_connections_retry_with_doubling_delays_and_log_once():
    """While Redis refuses, attempts follow 0.5, 1, 2, 4, 4 s (jitter 0 of steps 1..8) and one line is logged."""
    harness = Harness()
    with capturedLogs() as events:
        harness.broker.start()
        delays = []
        for _ in range(5):
            harness.refuse()
            (call,) = harness.reactor.getDelayedCalls()
            delays.append(call.getTime() - harness.reactor.seconds())
            harness.reactor.advance(delays[-1])
    assert delays == [0.5, 1.0, 2.0, 4.0, 4.0]
    assert harness.attempts() == 6
    assert [e["log_format"].split(":")[1].strip().split(" ")[0] for e in events if "broker" in e["log_format"]] == [
        "cannot"
    ]


def test_channels_with_members_are_subscribed_on_connect_with_the_prefix():
    """Every channel with members here is SUBSCRIBEd as PREFIX + channel name once the link is up."""
    harness = Harness()
    harness.broker.subscribe("/chat/room1", Member())
    harness.broker.start()
    _, _, subscribed = harness.up()
    assert b"SUBSCRIBE" in subscribed.value() and b"wsdaemon:/chat/room1" in subscribed.value()


def test_messages_from_redis_reach_members_and_own_ones_come_back_once():
    """A payload on PREFIX/c reaches members of /c; our own published message is delivered when Redis returns it."""
    harness = Harness()
    member = Member()
    harness.broker.subscribe("/c", member)
    harness.broker.start()
    commands, subscriber, _ = harness.up()
    subscriber.dataReceived(bulk(b"subscribe", b"wsdaemon:/c") + b":1\r\n")
    harness.broker.publish("/c", SharedMessage(Opcode.TEXT, b"mine"))
    sent = commands.value()
    assert b"PUBLISH" in sent and b"wsdaemon:/c" in sent
    own = encode(Opcode.TEXT, b"mine", ORIGIN, 1)
    subscriber.dataReceived(
        bulk(b"message", b"wsdaemon:/c", b"tfrom redis-cli") + bulk(b"message", b"wsdaemon:/c", own)
    )
    assert member.got == [b"from redis-cli", b"mine"]


def test_losing_either_connection_takes_the_link_down_closes_the_other_and_reconnects():
    """When the subscriber connection drops, the link goes down once, aborts the commands one, and retries."""
    harness = Harness()
    harness.broker.start()
    commands, _, _ = harness.up()
    with capturedLogs() as events:
        harness.lose(1)
    assert harness.broker.state is LinkState.DOWN
    assert commands.disconnecting or commands.disconnected
    assert len([e for e in events if "connection lost" in e["log_format"]]) == 1
    assert harness.retries() == [0.5]  # the backoff started again from its first step
    harness.reactor.advance(0.5)
    harness.up()
    assert harness.broker.state is LinkState.UP


def test_a_wrong_password_fails_the_attempt_with_the_reason():
    """AUTH refused: the attempt fails, the reason (could not auth) is logged once, and the link retries."""
    harness = Harness(password="not it")
    with capturedLogs() as events:
        harness.broker.start()
        protocol, transport = harness.accept()
        assert transport.value().startswith(b"*2\r\n$4\r\nAUTH\r\n")
        protocol.dataReceived(b"-WRONGPASS invalid username-password pair\r\n")
        protocol.connectionLost(Failure(ConnectionDone()))
    assert harness.broker.state is LinkState.DOWN
    (warning,) = [e for e in events if "cannot connect" in e["log_format"]]
    assert "could not auth" in warning["reason"]
    assert len(harness.retries()) == 1


def test_a_server_that_never_answers_times_out():
    """A connection whose AUTH gets no answer within connect_timeout_seconds is aborted and retried."""
    harness = Harness(password="pw")
    harness.broker.start()
    _, transport = harness.accept()
    harness.reactor.advance(SETTINGS.connect_timeout_seconds)
    assert transport.disconnecting or transport.disconnected
    assert len(harness.retries()) == 1


def test_presence_is_written_with_an_expiry_and_removed_on_stop():
    """Member counts are written as HSET PREFIXpresence:CHANNEL FIELD "COUNT EXPIRES" + EXPIRE, and HDEL'd on stop."""
    harness = Harness()
    harness.broker.start()
    commands, _, _ = harness.up()
    commands.clear()
    harness.broker.subscribe("/c", Member())
    harness.broker.subscribe("/c", Member())
    harness.reactor.advance(0)
    written = commands.value()
    assert b"HSET" in written and b"wsdaemon:presence:/c" in written and b"2 30.000" in written
    assert b"EXPIRE" in written
    commands.clear()
    harness.broker.stop()
    assert b"HDEL" in commands.value()


def test_presence_sums_live_entries_and_ignores_expired_ones():
    """GET presence = this process's count + every other entry whose expiry is still ahead."""
    harness = Harness()
    harness.broker.start()
    _commands, _, _ = harness.up()
    harness.broker.subscribe("/c", Member())
    harness.reactor.advance(1)
    result = harness.broker.presence("/c")
    harness.commands_protocol.dataReceived(b"+PONG\r\n" + b":1\r\n:1\r\n")  # PING, HSET, EXPIRE
    harness.commands_protocol.dataReceived(bulk(b"p1", b"9 99", b"other", b"3 100.0", b"dead", b"7 0.5", b"junk", b"x"))
    presence = result.result
    assert (presence.members, presence.complete) == (1 + 3, True)


@pytest.mark.parametrize(("scheme", "expected"), [("redis", "HostnameEndpoint"), ("rediss", "_WrapperEndpoint")])
def test_tcp_and_tls_urls_use_the_matching_endpoint(scheme, expected):
    """redis:// connects over TCP and rediss:// wraps that TCP endpoint in TLS."""
    settings = BrokerConfig(f"{scheme}://127.0.0.1:6379/0", scheme)
    link = RedisLink(MemoryReactorClock(), settings, None, "p")
    assert type(link.endpoint()).__name__ == expected
