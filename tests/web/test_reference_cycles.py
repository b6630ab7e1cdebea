"""A closed connection is freed by reference counting, not left to the cyclic garbage collector.

Every object a connection made (the TCP wrapper, the HTTP channel and its request,
the WebSocket protocol, the core's connection, the handler) must go as soon as the
connection is over. Before, a channel and its request, and a handler and its
transport, referred to each other: each closed connection was a garbage cycle,
and under a handshake load a tenth of the daemon's CPU went to collecting them.
The tests run with the collector off, so only reference counting can free anything.
"""

from __future__ import annotations

import weakref
from typing import Any

import pytest
from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionLost
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from zope.interface import implementer

from tests.helpers import Opcode, close_payload
from tests.web.stack import Stack, upgrade_request
from wsdaemon.adapter.switching import SwitchingFactory
from wsdaemon.handlers.echo import EchoFactory, EchoProtocol
from wsdaemon.interfaces import IAuthenticator, Identity
from wsdaemon.web.resource import WebSocketResource
from wsdaemon.web.site import DaemonSite


class ProducingEcho(EchoProtocol):
    """An echo that also attaches itself as the producer its transport pauses (as the broadcast handler does)."""

    def negotiationStarted(self, transport: Any) -> None:
        super().negotiationStarted(transport)
        transport.attachProducer(self)

    def pauseProducing(self) -> None:
        """Nothing to pause."""

    def resumeProducing(self) -> None:
        """Nothing to resume."""

    def stopProducing(self) -> None:
        """Nothing to stop."""


class WatchedFactory(EchoFactory):
    """Builds ``handler_class`` handlers and keeps only weak references to what it was given and built."""

    def __init__(self, handler_class: type[EchoProtocol] = EchoProtocol) -> None:
        self.handler_class = handler_class
        self.requests: list[weakref.ref[Any]] = []
        self.handlers: list[weakref.ref[Any]] = []

    def buildProtocol(self, request: Any) -> EchoProtocol:
        handler = self.handler_class()
        self.requests.append(weakref.ref(request))
        self.handlers.append(weakref.ref(handler))
        return handler


@implementer(IAuthenticator)
class Later:
    """An authenticator that answers each request later, when the test fires its Deferred."""

    def __init__(self) -> None:
        self.pending: list[Deferred[Identity | None]] = []

    def authenticate(self, request: Any) -> Deferred[Identity | None]:
        self.pending.append(Deferred())
        return self.pending[-1]


def guarded_stack(factory: WatchedFactory, authenticator: Later) -> Stack:
    """The default stack with /echo served by ``factory`` behind ``authenticator``."""
    stack = Stack()
    root = Resource()
    endpoint = WebSocketResource(
        factory, stack.clock, admission=stack.factory.admission, authenticator=authenticator, path="/echo"
    )
    root.putChild(b"echo", endpoint)
    site = DaemonSite(root, stack.config, stack.clock)
    stack.factory = SwitchingFactory(site, stack.config.limits, stack.clock, stack.factory.admission)
    return stack


def open_and_close(
    factory: WatchedFactory, *, vanish: bool, authenticator: Later | None = None
) -> dict[str, weakref.ref[Any]]:
    """One upgraded connection that echoes a message and closes; weak references to its parts."""
    stack = Stack(factories={"/echo": factory}) if authenticator is None else guarded_stack(factory, authenticator)
    peer = stack.connect()
    parts = {"tcp wrapper": weakref.ref(peer.protocol), "http channel": weakref.ref(peer.protocol.wrappedProtocol)}
    peer.send(upgrade_request("/echo"))
    if authenticator is not None:
        assert peer.take() == b"", "answered before the authenticator did"
        authenticator.pending.pop().callback(Identity("alice", "test"))
    assert peer.take().startswith(b"HTTP/1.1 101 ")
    wire = peer.protocol.upgraded
    assert wire is not None
    parts.update(
        websocket=weakref.ref(wire),
        core=weakref.ref(wire.connection),  # type: ignore[attr-defined]
        request=factory.requests[0],
        handler=factory.handlers[0],
    )
    del wire
    peer.send_frame(Opcode.TEXT, b"hello")
    assert peer.frames() == [(True, Opcode.TEXT, b"hello")]
    if vanish:
        # What Twisted's TCP transport does as its socket goes (FileDescriptor.connectionLost),
        # and a StringTransport does not: stop its producer, the WebSocket protocol, and drop it.
        peer.transport.producer.stopProducing()
        peer.transport.producer = None
        peer.lose(Failure(ConnectionLost("the client went away")))
    else:
        peer.send_frame(Opcode.CLOSE, close_payload(1000))
        assert peer.frames() == [(True, Opcode.CLOSE, close_payload(1000))]
        peer.lose()
    assert not stack.factory.protocols, "the connection is still counted as open"
    del peer
    return parts


@pytest.mark.parametrize("vanish", [False, True], ids=["close handshake", "client vanished"])
@pytest.mark.parametrize("handler_class", [EchoProtocol, ProducingEcho], ids=["echo", "attached producer"])
def test_a_closed_websocket_connection_is_freed_at_once(no_collector, handler_class, vanish):
    """With the collector off, nothing of a finished connection is left alive."""
    parts = open_and_close(WatchedFactory(handler_class), vanish=vanish)
    alive = sorted(name for name, ref in parts.items() if ref() is not None)
    assert alive == []


def test_a_connection_that_waited_for_its_authenticator_is_freed_at_once(no_collector):
    """The upgrade that went on when an asynchronous authenticator answered leaves nothing alive either."""
    parts = open_and_close(WatchedFactory(), vanish=False, authenticator=Later())
    alive = sorted(name for name, ref in parts.items() if ref() is not None)
    assert alive == []


def test_the_handler_hears_the_close_before_it_is_let_go(no_collector):
    """Letting the handler go comes after telling it: its connectionLost still has the close code."""
    codes: list[int] = []

    class Listening(EchoProtocol):
        def connectionLost(self, reason: Failure) -> None:
            codes.append(reason.value.code)

    open_and_close(WatchedFactory(Listening), vanish=False)
    assert codes == [1000]
