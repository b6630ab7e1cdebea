"""The broker and the API in service assembly (wsdaemon.service): which broker, who serves the API, shutdown order."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from twisted.internet.address import IPv4Address, UNIXAddress
from twisted.internet.defer import Deferred, succeed
from twisted.internet.testing import MemoryReactorClock

from wsdaemon.broker import InProcessBroker, LinkState
from wsdaemon.broker.linked import LinkedBroker
from wsdaemon.config import parse_config
from wsdaemon.handlers.broadcast import BroadcastFactory
from wsdaemon.plugins import discover_handlers
from wsdaemon.pubsub import build_api_access, build_broker, same_socket
from wsdaemon.service import build_service

BROADCAST = '[[endpoints]]\npath = "/chat"\nhandler = "broadcast"\n'


def test_without_broker_config_channels_are_in_process():
    """No [broker]: the in-process broker, shared by every broadcast endpoint."""
    config = parse_config(BROADCAST + '[[endpoints]]\npath = "/news"\nhandler = "broadcast"\n', "t.toml")
    reactor = MemoryReactorClock()
    service = build_service(config, discover_handlers(), reactor)
    (factories,) = [service.runtime.current.factories]
    broker = next(iter(factories.values())).broker
    assert isinstance(broker, InProcessBroker)
    assert all(isinstance(f, BroadcastFactory) and f.broker is broker for f in factories.values())


def test_with_broker_config_the_redis_broker_starts_down(tmp_path):
    """[broker] gives the Redis broker (its password read from password_file); nothing connects before start."""
    secret = tmp_path / "pw"
    secret.write_text("hunter2\nignored\n")
    config = parse_config(f'[broker]\nurl = "redis://127.0.0.1:1/0"\npassword_file = "{secret}"\n', "t.toml")
    reactor = MemoryReactorClock()
    broker = build_broker(config, reactor, [])
    assert isinstance(broker, LinkedBroker) and broker.state is LinkState.DOWN
    assert broker.link.password == "hunter2" and reactor.tcpClients == []


def test_unreadable_secret_files_are_config_problems(tmp_path):
    """A missing password_file or token_file, or a short token, is a problem naming its key."""
    problems = []
    config = parse_config(
        f'[broker]\nurl = "redis://h/0"\npassword_file = "{tmp_path}/none"\n[api]\ntoken_file = "{tmp_path}/none"\n',
        "t.toml",
    )
    build_broker(config, MemoryReactorClock(), problems)
    build_api_access(config, [], problems)
    short = tmp_path / "short"
    short.write_text("abc\n")
    build_api_access(parse_config(f'[api]\ntoken_file = "{short}"\n', "t.toml"), [], problems)
    assert [(p.key, p.expected) for p in problems] == [
        ("broker.password_file", "a readable file"),
        ("api.token_file", "a readable file"),
        ("api.token_file", "a token of at least 16 characters on the first line"),
    ]


@pytest.mark.parametrize(
    ("connection", "listening", "same"),
    [
        (IPv4Address("TCP", "127.0.0.1", 8080), IPv4Address("TCP", "0.0.0.0", 8080), True),
        (IPv4Address("TCP", "127.0.0.1", 8080), IPv4Address("TCP", "127.0.0.1", 8080), True),
        (IPv4Address("TCP", "127.0.0.1", 8080), IPv4Address("TCP", "127.0.0.2", 8080), False),
        (IPv4Address("TCP", "127.0.0.1", 8081), IPv4Address("TCP", "0.0.0.0", 8080), False),
        (UNIXAddress(b"/run/api.sock"), UNIXAddress(b"/run/api.sock"), True),
        (UNIXAddress(b"/run/api.sock"), IPv4Address("TCP", "0.0.0.0", 8080), False),
    ],
)
def test_a_connection_belongs_to_the_listener_with_its_port_or_socket_path(connection, listening, same):
    """The API's listener check matches a connection to a listener by port (any-address aware) or unix path."""
    assert same_socket(connection, listening) is same


def test_api_is_served_only_on_the_listeners_it_names(tmp_path):
    """With [api] listeners = [the second], a request on the first listener's port is not served."""
    token = tmp_path / "token"
    token.write_text("0123456789abcdef\n")
    text = (
        '[[listeners]]\nendpoint = "tcp:8080:interface=127.0.0.1"\n[[listeners]]\nendpoint = "tcp:8081:interface=127.0.0.1"\n'
        f'[api]\ntoken_file = "{token}"\nlisteners = ["tcp:8081:interface=127.0.0.1"]\n'
    )
    listeners = [
        SimpleNamespace(
            description=f"tcp:{port}:interface=127.0.0.1",
            port=SimpleNamespace(getHost=lambda p=port: IPv4Address("TCP", "127.0.0.1", p)),
        )
        for port in (8080, 8081)
    ]
    access = build_api_access(parse_config(text, "t.toml"), listeners, [])
    on = lambda port: SimpleNamespace(getHost=lambda: IPv4Address("TCP", "127.0.0.1", port))  # noqa: E731
    assert access.token == b"0123456789abcdef"
    assert (access.on_allowed_listener(on(8080)), access.on_allowed_listener(on(8081))) == (False, True)


class RecordingBroker(InProcessBroker):
    def __init__(self):
        super().__init__()
        self.calls = []

    def start(self):
        self.calls.append("start")

    def stop(self):
        self.calls.append("stop")
        return succeed(None)


def test_the_broker_stops_with_the_handlers_services_after_the_drain():
    """The broker is a handler service: it starts first, and stops only after every WebSocket drained."""
    broker = RecordingBroker()
    service = build_service(parse_config(BROADCAST, "t.toml"), discover_handlers(), MemoryReactorClock(), broker=broker)
    drained: Deferred = Deferred()
    service.drain = lambda: drained
    service.startService()
    assert broker.calls == ["start"]
    service.stopService()
    assert broker.calls == ["start"]  # the drain is not done yet
    drained.callback(None)
    assert broker.calls == ["start", "stop"]
