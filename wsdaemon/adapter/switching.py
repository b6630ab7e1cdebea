"""Same-port HTTP and WebSocket: a wrapper that hands a connection from HTTP to WebSocket.

Every accepted connection starts as a :class:`SwitchingProtocol` around the
twisted.web ``HTTPChannel``. A ``ProtocolWrapper`` *is* the transport of the
protocol it wraps, so a Resource finds it as ``request.channel.transport`` and
calls :meth:`SwitchingProtocol.switchTo`; from then on the bytes go to the
WebSocket protocol. Only public ``twisted.protocols.policies`` API is used, and
it works under TLS because the TLS factory wraps this one (DESIGN §2.2, seam 2).

The wrapper sees every connection first, so it opens and closes each
connection's ticket with the daemon's :class:`~wsdaemon.admission.Admission`
(the client address and the connection counts) and keeps the handshake deadline.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IAddress, IProtocol, IProtocolFactory, IReactorTime, ITCPTransport
from twisted.internet.protocol import Protocol, connectionDone
from twisted.logger import Logger
from twisted.protocols.policies import ProtocolWrapper, WrappingFactory
from twisted.python.failure import Failure

from wsdaemon.adapter.deadlines import Deadline
from wsdaemon.adapter.protocol import WebSocketWireProtocol
from wsdaemon.adapter.transport import IStreamTransport
from wsdaemon.admission import Admission, AdmissionTicket, Resolution, TrustedNetworks
from wsdaemon.core import Limits
from wsdaemon.core.errors import LocalClose

if TYPE_CHECKING:
    from twisted.web.server import Request


class SwitchingProtocol(ProtocolWrapper):
    """One connection: HTTP until :meth:`switchTo`, then the WebSocket protocol."""

    log = Logger()
    factory: SwitchingFactory
    transport: IStreamTransport | None

    def __init__(self, factory: SwitchingFactory, wrappedProtocol: IProtocol) -> None:
        super().__init__(factory, wrappedProtocol)
        self.upgraded: Protocol | None = None
        self._handshake_deadline = Deadline(factory.reactor)
        self._in_request = False
        self._lost = False
        self._host: IAddress | None = None
        #: This connection's admission ticket: the client it is counted under (set once connected).
        self.ticket: AdmissionTicket | None = None

    def makeConnection(self, transport: Any) -> None:
        """Turn off Nagle (small frames must not wait) and start the handshake clock."""
        if ITCPTransport.providedBy(transport):
            transport.setTcpNoDelay(True)
        super().makeConnection(transport)  # type: ignore[no-untyped-call]  # super(): mypy#16653
        if self.upgraded is None and not self._in_request:
            self._arm_handshake_deadline()

    def getHost(self) -> IAddress:
        """Our end's address, asked of the socket once (twisted.web asks for every request)."""
        if self._host is None:
            self._host = super().getHost()  # type: ignore[no-untyped-call]  # super(): mypy#16653
        return self._host

    def resolveClient(self, request: Request) -> Resolution:
        """The client of ``request`` on this connection, as the admission resolves it (the ticket follows)."""
        assert self.ticket is not None  # registered with the factory before any byte arrives
        return self.factory.admission.resolve(self.ticket, request, self.factory.trusted_networks)

    def switchTo(self, protocol: Protocol, head: bytes) -> None:
        """Write the 101 ``head`` and give the connection to ``protocol``.

        The HTTPChannel's producer registration is dropped so the WebSocket
        protocol can register its own (for backpressure), and then the channel
        itself: it has nothing left to do (its idle timer is off while a
        request is pending, and this request never finishes), and letting it
        go saves about 1.2 KiB per open WebSocket. Like Twisted's own
        ``twisted.web.websocket``, the channel is not told of the end of the
        connection; the WebSocket protocol is.
        """
        self._handshake_deadline.cancel()
        transport = self.transport
        assert transport is not None  # a request arrived on it
        transport.unregisterProducer()
        transport.write(head)
        self.upgraded = self.wrappedProtocol = protocol  # ProtocolWrapper.dataReceived feeds it from now on
        self._host = None  # no more requests to ask for it: 150 bytes less per open WebSocket
        transport.resumeProducing()  # before the protocol starts, so a pause it sets up stays
        protocol.makeConnection(transport)

    def requestStarted(self) -> None:
        """A complete request head arrived: the handshake clock stops while it is served."""
        self._in_request = True
        self._handshake_deadline.cancel()

    def requestFinished(self) -> None:
        """A response was sent: a kept-alive connection gets a new handshake clock."""
        self._in_request = False
        if self.upgraded is None and not self._lost and not self.disconnecting:
            self._arm_handshake_deadline()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        """Tell whichever protocol owns the connection: the HTTPChannel, or the WebSocket after a switch."""
        self._lost = True
        self._handshake_deadline.cancel()
        super().connectionLost(reason)  # type: ignore[no-untyped-call]  # super(): mypy#16653

    def _arm_handshake_deadline(self) -> None:
        self._handshake_deadline.set(self.factory.limits.handshake_timeout_seconds, self._handshake_timed_out)

    def _handshake_timed_out(self) -> None:
        """No complete request head in time (slowloris, or an idle keep-alive): hang up."""
        self.log.info("handshake timeout for {peer}", peer=str(self.ticket.address) if self.ticket else "(unknown)")
        self.loseConnection()


class SwitchingFactory(WrappingFactory[SwitchingProtocol]):
    """Wraps the ``Site``; each connection is counted by ``admission`` (in total and per client) while open.

    Args:
        wrappedFactory: the ``DaemonSite``.
        limits: the limits of new connections (``max_connections``, the handshake deadline);
            the daemon's subclass reads the running Runtime's instead, so a reload applies.
        reactor: the clock of the handshake and drain deadlines.
        admission: the daemon's one :class:`Admission` (its endpoints ask the same one);
            a new one unless given.
        trusted_networks: the reverse proxies whose ``Forwarded``/``X-Forwarded-For`` count.
    """

    protocol = SwitchingProtocol
    log = Logger()

    def __init__(
        self,
        wrappedFactory: IProtocolFactory,
        limits: Limits,
        reactor: IReactorTime,
        admission: Admission | None = None,
        trusted_networks: TrustedNetworks = (),
    ) -> None:
        super().__init__(wrappedFactory)  # type: ignore[no-untyped-call]  # super(): mypy#16653
        self._limits = limits
        self._trusted_networks = trusted_networks
        self.reactor = reactor
        self.admission = admission if admission is not None else Admission()
        self._drained: list[Deferred[None]] = []

    @property
    def limits(self) -> Limits:
        """The limits a new connection gets (the daemon's subclass reads the running Runtime's)."""
        return self._limits

    @property
    def trusted_networks(self) -> TrustedNetworks:
        """The reverse proxies whose forwarding headers name the client (none here; the daemon's reads its config)."""
        return self._trusted_networks

    # Twisted's WrappingFactory never refuses a connection, so its types leave out None.
    def buildProtocol(self, addr: IAddress | None) -> SwitchingProtocol | None:  # type: ignore[override]
        """Refuse the connection (close at once) when ``max_connections`` are open."""
        if not self.admission.room_for_connection(self.limits):
            self.log.warn(
                "refusing connection from {addr}: max_connections={limit} reached",
                addr=addr,
                limit=self.limits.max_connections,
            )
            return None
        return super().buildProtocol(addr)

    def registerProtocol(self, p: Protocol) -> None:
        """Count a new connection: its ticket records the client it is counted under."""
        super().registerProtocol(p)  # type: ignore[no-untyped-call]  # super(): mypy#16653
        assert isinstance(p, SwitchingProtocol)  # the only protocol this factory builds
        p.ticket = self.admission.connected(p.getPeer())

    def unregisterProtocol(self, p: Protocol) -> None:
        """Uncount a closed connection, under the client its ticket says (never by asking the transport again)."""
        super().unregisterProtocol(p)  # type: ignore[no-untyped-call]  # super(): mypy#16653
        if isinstance(p, SwitchingProtocol) and p.ticket is not None:
            self.admission.disconnected(p.ticket)
        if not self.protocols:
            waiting, self._drained = self._drained, []
            for drained in waiting:
                drained.callback(None)

    def drain(self, why: LocalClose, timeout_seconds: float) -> Deferred[None]:
        """Close every connection: WebSockets for ``why`` (a close handshake, e.g. ``SHUTDOWN``), HTTP ones at once.

        Fires when all are gone, or after ``timeout_seconds``, when the rest are aborted.
        """
        drained: Deferred[None] = Deferred()
        if not self.protocols:
            drained.callback(None)
            return drained
        self._drained.append(drained)
        for wrapper in list(self.protocols):
            upgraded = wrapper.upgraded
            if isinstance(upgraded, WebSocketWireProtocol):
                upgraded.close_for(why)
            else:
                wrapper.loseConnection()
        deadline = self.reactor.callLater(timeout_seconds, self._abort_all)

        def stop_deadline(result: None) -> None:
            if deadline.active():
                deadline.cancel()
            return result

        drained.addBoth(stop_deadline)
        return drained

    def _abort_all(self) -> None:
        """The drain timeout passed: drop whoever is still connected."""
        remaining = list(self.protocols)
        if remaining:
            self.log.warn("drain timeout: aborting {count} connections", count=len(remaining))
        for wrapper in remaining:
            wrapper.transport.abortConnection()
