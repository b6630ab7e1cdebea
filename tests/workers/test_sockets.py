"""The main process's held sockets (wsdaemon.workers.sockets): opened, never accepted on, closed on failure."""

from __future__ import annotations

from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IReadDescriptor
from twisted.internet.testing import MemoryReactor
from zope.interface import implementer

from wsdaemon.config import ListenerConfig
from wsdaemon.workers.sockets import HeldForWorkers, ListenFailed, open_sockets


@implementer(IReadDescriptor)
class FakeSocketPort:
    """A listening port with a file descriptor, as tcp.Port is."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.closed = False

    def fileno(self) -> int:
        return self.fd

    def doRead(self) -> None:
        raise AssertionError("the main process never accepts")

    def connectionLost(self, reason: Any) -> None:
        pass

    def logPrefix(self) -> str:
        return "fake"

    def stopListening(self) -> None:
        self.closed = True

    def getHost(self) -> IPv4Address:
        return IPv4Address("TCP", "127.0.0.1", 8080)


class Reactor(MemoryReactor):
    """listenTCP gives a port with an fd (and reads it, as Port.startListening does), or fails for port 81."""

    def __init__(self) -> None:
        super().__init__()
        self.ports: list[FakeSocketPort] = []

    def listenTCP(self, port: int, factory: Any, backlog: int = 50, interface: str = "") -> FakeSocketPort:
        if port == 81:
            raise CannotListenError(interface, port, OSError("Address already in use"))
        made = FakeSocketPort(40 + len(self.ports))
        self.ports.append(made)
        self.addReader(made)
        return made


def test_sockets_are_held_open_but_never_read():
    """Each listener is opened and its fd kept; the main process's reactor does not watch it."""
    reactor = Reactor()
    held = []
    open_sockets(reactor, [ListenerConfig("tcp:8080"), ListenerConfig("tcp:8081")]).addCallback(held.extend)
    assert [(item.listener.endpoint, item.fd) for item in held] == [("tcp:8080", 40), ("tcp:8081", 41)]
    assert reactor.readers == set()


def test_a_listener_that_cannot_listen_fails_and_closes_the_others():
    """ "Address already in use" on one listener: ListenFailed names it, the sockets already open are closed."""
    reactor = Reactor()
    failures = []
    open_sockets(reactor, [ListenerConfig("tcp:8080"), ListenerConfig("tcp:81")]).addErrback(failures.append)
    (failure,) = failures
    assert failure.check(ListenFailed) and str(failure.value).startswith("cannot listen on tcp:81: ")
    assert "Address already in use" in str(failure.value)
    assert reactor.ports[0].closed


def test_an_endpoint_string_that_does_not_parse_fails_the_same_way():
    """A bad endpoint string is a ListenFailed too, not a traceback."""
    failures = []
    open_sockets(Reactor(), [ListenerConfig("tcp:notaport")]).addErrback(failures.append)
    assert failures[0].check(ListenFailed)


def test_a_port_without_a_file_descriptor_is_refused():
    """A listening port that is not a socket (MemoryReactor's fake) cannot be handed to workers."""
    failures = []
    open_sockets(MemoryReactor(), [ListenerConfig("tcp:8080")]).addErrback(failures.append)
    assert "not a socket the workers can share" in str(failures[0].value)


def test_a_connection_reaching_the_main_process_is_refused():
    """Should the main process ever accept, it builds no protocol: connections are the workers'."""
    factory = HeldForWorkers()
    assert factory.buildProtocol(None) is None
    assert "main process" in factory.logPrefix()
