"""The running Runtime (wsdaemon.runtime): one value that a reload builds anew and swaps whole.

A daemon is built by ``build_service`` on a ``MemoryReactorClock``; connections are
``StringTransport`` peers on its listening factory, reloads are ``lifecycle.reload()``.
No socket is opened and no reactor runs.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import pytest
from twisted.application.service import MultiService
from twisted.internet.address import IPv4Address
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.web.resource import Resource

from tests.web.stack import Peer, http_request, upgrade_request
from wsdaemon.config import Problem, parse_config
from wsdaemon.core.frames import Opcode
from wsdaemon.interfaces import HandlerContext, WebSocketTransport
from wsdaemon.runtime import Runtime, RuntimeBuilder, RuntimeSlot, reuse_unchanged
from wsdaemon.service import DaemonService, build_service
from wsdaemon_plugins import wsdaemon_handlers

LISTENER = '[[listeners]]\nendpoint = "tcp:8080:interface=127.0.0.1"\n'


def endpoint(tag: str, max_message_bytes: int = 1000) -> str:
    """One /tag endpoint whose handlers answer with ``tag``, and its message size limit."""
    return (
        f'[[endpoints]]\npath = "/tag"\nhandler = "tag"\n[endpoints.options]\ntag = "{tag}"\n'
        f"[endpoints.limits]\nmax_message_bytes = {max_message_bytes}\n"
    )


class TagProtocol:
    """Answers every text message with its factory's tag: which Runtime built it shows on the wire."""

    transport: WebSocketTransport

    def __init__(self, tag: str) -> None:
        self.tag = tag

    def negotiationStarted(self, transport: WebSocketTransport) -> None:
        self.transport = transport

    def negotiationFinished(self) -> None:
        pass

    def textMessageReceived(self, message: str) -> None:
        self.transport.sendTextMessage(self.tag)

    def bytesMessageReceived(self, data: bytes) -> None:
        pass

    def pongReceived(self, payload: bytes) -> None:
        pass

    def connectionLost(self, reason: Any) -> None:
        pass


class TagFactory:
    """Builds TagProtocols with one tag."""

    def __init__(self, tag: str) -> None:
        self.tag = tag

    def buildProtocol(self, request: Any) -> TagProtocol:
        return TagProtocol(self.tag)


class TagPlugin:
    """The "tag" handler: option ``tag``."""

    options: ClassVar[dict[str, str]] = {"tag": "any string"}

    def buildFactory(self, options: Any, path: str, context: HandlerContext) -> TagFactory:
        return TagFactory(options.get("tag", "echo"))


class Daemon:
    """A daemon whose config file is ``self.text``, re-read on reload."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.service: DaemonService = build_service(
            parse_config(text, "test.toml"),
            # echo and the real broadcast: the default endpoints of a file without any
            {"tag": TagPlugin(), "echo": TagPlugin(), "broadcast": wsdaemon_handlers.broadcast},
            MemoryReactorClock(),
            load_config=lambda: parse_config(self.text, "test.toml"),
        )
        self.ports = iter(range(40000, 50000))

    def reload(self, text: str) -> bool:
        """Change the file and reload it."""
        self.text = text
        return self.service.lifecycle.reload()

    def connect(self) -> Peer:
        """Accept one TCP connection."""
        address = IPv4Address("TCP", "192.0.2.9", next(self.ports))
        protocol = self.service.factory.buildProtocol(address)
        assert protocol is not None, "refused"
        transport = StringTransport(hostAddress=IPv4Address("TCP", "127.0.0.1", 8080), peerAddress=address)
        protocol.makeConnection(transport)
        return Peer(protocol, transport)

    def websocket(self) -> Peer:
        """An upgraded connection to /tag (the 101 consumed)."""
        peer = self.connect()
        assert peer.request(upgrade_request("/tag")).status == 101
        return peer


def answer(peer: Peer, text: str = "hi") -> list[tuple[bool, int, bytes]]:
    """Send one text message; the frames that came back."""
    peer.send_frame(Opcode.TEXT, text.encode())
    return peer.frames()


# --- the swap ------------------------------------------------------------------------------------------


def test_reload_swaps_in_a_new_runtime_and_leaves_the_old_one_as_it_was():
    """A reload replaces the whole Runtime (config, factories, tree); the previous one is not changed."""
    daemon = Daemon(LISTENER + endpoint("old"))
    before = daemon.service.runtime.current
    assert daemon.reload(LISTENER + endpoint("new") + "[limits]\nmax_connections = 9\n")
    after = daemon.service.runtime.current
    assert after is not before
    assert (before.config.limits.max_connections, after.config.limits.max_connections) == (10_000, 9)
    assert before.factories["/tag"].tag == "old" and after.factories["/tag"].tag == "new"
    assert before.root is not after.root


def test_new_websockets_get_the_new_runtime_and_open_ones_keep_theirs():
    """After a reload a new WebSocket is served by the new handler; one already open keeps its handler and limits."""
    daemon = Daemon(LISTENER + endpoint("old", max_message_bytes=10))
    first = daemon.websocket()
    assert daemon.reload(LISTENER + endpoint("new", max_message_bytes=1000))
    second = daemon.websocket()
    assert answer(second) == [(True, Opcode.TEXT, b"new")]
    assert answer(first) == [(True, Opcode.TEXT, b"old")]
    assert answer(second, "x" * 50) == [(True, Opcode.TEXT, b"new")]
    (close,) = answer(first, "x" * 50)  # still the old 10-byte limit
    assert close[1] == Opcode.CLOSE and close[2][:2] == (1009).to_bytes(2, "big")


def test_requests_after_a_reload_are_routed_through_the_new_tree():
    """An endpoint added by a reload answers the next request, even on a connection opened before."""
    daemon = Daemon(LISTENER)
    peer = daemon.connect()
    assert peer.request(http_request("/tag")).status == 404
    assert daemon.reload(LISTENER + endpoint("new"))
    assert peer.request(http_request("/tag")).status == 426  # a WebSocket endpoint, asked without an upgrade


def test_new_connections_are_counted_against_the_new_limits():
    """max_connections of the reloaded file decides whether the next connection is accepted."""
    daemon = Daemon(LISTENER)
    daemon.connect()
    assert daemon.reload(LISTENER + "[limits]\nmax_connections = 1\n")
    with pytest.raises(AssertionError, match="refused"):
        daemon.connect()


def test_refused_reload_keeps_the_running_runtime():
    """A reload naming an unknown handler leaves the very same Runtime running."""
    daemon = Daemon(LISTENER + endpoint("old"))
    before = daemon.service.runtime.current
    assert not daemon.reload(LISTENER + '[[endpoints]]\npath = "/x"\nhandler = "missing"\n')
    assert daemon.service.runtime.current is before


# --- the pieces ----------------------------------------------------------------------------------------------


def test_runtime_is_frozen_and_its_factories_read_only():
    """A Runtime cannot be changed after it is built: fields and the factory mapping are read-only."""
    runtime = Runtime(parse_config(LISTENER, "test.toml"), {"/a": TagFactory("a")}, Resource())
    with pytest.raises(dataclasses.FrozenInstanceError):
        runtime.root = Resource()  # type: ignore[misc]
    with pytest.raises(TypeError):
        runtime.factories["/b"] = TagFactory("b")  # type: ignore[index]


def test_slot_swap_returns_the_previous_runtime():
    """swap makes the new Runtime current and hands back the one it replaced."""
    config = parse_config(LISTENER, "test.toml")
    old, new = Runtime(config, {}, Resource()), Runtime(config, {}, Resource())
    slot = RuntimeSlot(old)
    assert slot.swap(new) is old and slot.current is new


def builder() -> RuntimeBuilder:
    """A builder for the "tag" handler whose trees are plain Resources."""
    return RuntimeBuilder(
        {"tag": TagPlugin()}, HandlerContext(MemoryReactorClock(), MultiService()), lambda c, f, a: Resource()
    )


def test_unchanged_endpoints_keep_their_factory_and_the_listeners_stay():
    """A rebuilt Runtime reuses the factory of an endpoint whose options did not change, and keeps the listeners."""
    running = builder().build(parse_config(LISTENER + endpoint("same"), "test.toml"), [])
    assert running is not None
    other = parse_config('[[listeners]]\nendpoint = "tcp:9"\n' + endpoint("same"), "test.toml")
    rebuilt = builder().build(other, [], running)
    assert rebuilt is not None
    assert rebuilt.factories["/tag"] is running.factories["/tag"]
    assert rebuilt.config.listeners == running.config.listeners


def test_changed_endpoint_gets_its_fresh_factory():
    """An endpoint whose options changed is served by the freshly built factory."""
    running = builder().build(parse_config(LISTENER + endpoint("a"), "test.toml"), [])
    assert running is not None
    config = parse_config(LISTENER + endpoint("b"), "test.toml")
    fresh = {"/tag": TagFactory("b")}
    assert reuse_unchanged(running, config, fresh)["/tag"] is fresh["/tag"]


def test_builder_reports_problems_and_builds_nothing():
    """An unknown handler is a problem for the caller to report, and no Runtime is built."""
    problems: list[Problem] = []
    config = parse_config('[[endpoints]]\npath = "/x"\nhandler = "missing"\n', "test.toml")
    assert builder().build(config, problems) is None
    assert [problem.key for problem in problems] == ["endpoints[0].handler"]
