"""The main process's listening sockets: opened once, never accepted on, inherited by every worker.

The main process listens on each configured endpoint (``tcp:``, ``tcp6:``, ``unix:``, or a
``systemd:`` socket adopted from socket activation) exactly as the single process does, with
Twisted's endpoints, then takes the port out of its reactor (``IReactorFDSet.removeReader``):
the socket stays open and keeps queueing connections, but the main process never accepts one.
Each worker inherits the socket as a file descriptor (``spawnProcess(childFDs=…)``) and adopts
it (``IReactorSocket.adoptStreamPort``), so all workers accept from one queue.

Because the main process holds the sockets, a worker that dies loses nothing but its own
connections: what the kernel queued meanwhile waits for the other workers or its replacement.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from twisted.internet.defer import Deferred, FirstError, fail, gatherResults
from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import IAddress, IListeningPort, IReadDescriptor
from twisted.internet.protocol import Factory, Protocol
from twisted.python.failure import Failure

from wsdaemon.config import ListenerConfig


class HeldForWorkers(Factory):
    """The factory of a port the main process only holds: it never accepts, so never builds.

    Should a connection reach it anyway, it is refused (``None``) rather than served here.
    """

    noisy = False  # no "Starting factory" lines

    def buildProtocol(self, addr: IAddress | None) -> Protocol | None:
        """Refuse: connections are for the workers."""
        return None

    def logPrefix(self) -> str:
        """Names the holder in Twisted's "… starting on PORT" line."""
        return "wsdaemon main process (socket for the workers)"


@dataclass(frozen=True)
class HeldSocket:
    """One listener's socket, held open by the main process for its workers."""

    listener: ListenerConfig
    port: IListeningPort
    fd: int


class ListenFailed(Exception):
    """A listener could not be opened; the message names it, as the single process does."""

    def __init__(self, endpoint: str, reason: str) -> None:
        super().__init__(f"cannot listen on {endpoint}: {reason}")
        self.endpoint = endpoint


def hold(reactor: Any, listener: ListenerConfig, port: IListeningPort) -> HeldSocket:
    """Stop the main process's reactor from accepting on ``port``; the socket stays open."""
    if not IReadDescriptor.providedBy(port):
        port.stopListening()
        raise ListenFailed(listener.endpoint, "not a socket the workers can share")
    reactor.removeReader(port)
    return HeldSocket(listener, port, port.fileno())


def _failed(listener: ListenerConfig, failure: Failure) -> Failure:
    if failure.check(ListenFailed):
        return failure
    return Failure(ListenFailed(listener.endpoint, failure.getErrorMessage()))


def open_sockets(reactor: Any, listeners: Sequence[ListenerConfig]) -> Deferred[list[HeldSocket]]:
    """Listen on every listener and hold the sockets; fails with the first :class:`ListenFailed`.

    On failure the sockets already opened are closed again.
    """
    deferreds = []
    for listener in listeners:
        try:
            listening = serverFromString(reactor, listener.endpoint).listen(HeldForWorkers())
        except Exception as error:  # noqa: BLE001 - serverFromString raises ValueError, KeyError, TypeError...
            listening = fail(ListenFailed(listener.endpoint, str(error)))
        listening.addCallback(functools.partial(hold, reactor, listener))
        deferreds.append(listening.addErrback(functools.partial(_failed, listener)))
    done: Deferred[list[HeldSocket]] = gatherResults(deferreds, consumeErrors=True)

    def close_opened(failure: Failure) -> Failure:
        for listening in deferreds:
            listening.addCallback(lambda held: held.port.stopListening()).addErrback(lambda _: None)
        error = failure.value
        return error.subFailure if isinstance(error, FirstError) else failure

    return done.addErrback(close_opened)


def close_sockets(sockets: Sequence[HeldSocket]) -> None:
    """Close the main process's copies (the workers' copies close as they stop)."""
    for held in sockets:
        held.port.stopListening()
