"""The immediate writer: a frame goes to the socket at once when nothing waits before it, and never overtakes.

These drive Twisted's real TCP transport class over a Unix socket pair (a real
socket, so they live with the integration tests; no network): the reactor is a
``MemoryReactorClock``, so "buffered" is visible as the transport asking to be
registered for writing. They also pin the private Twisted names the writer relies on: the two buffer
attributes of ``FileDescriptor`` and ``TLSMemoryBIOProtocol._flushSendBIO``
(a rename leaves the TLS records buffered, and the TLS tests fail).
"""

from __future__ import annotations

import socket
from pathlib import Path

from OpenSSL import SSL
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.tcp import Connection
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.protocols.policies import ProtocolWrapper, WrappingFactory
from twisted.protocols.tls import TLSMemoryBIOProtocol

from tests.certs import ThrowawayCA
from wsdaemon.adapter.immediate import ImmediateTLSProtocol, immediate_socket, send_now
from wsdaemon.adapter.protocol import WebSocketWireProtocol
from wsdaemon.adapter.turn import TurnWriter
from wsdaemon.config import TLSConfig
from wsdaemon.core import Connection as WebSocketConnection
from wsdaemon.core import Side
from wsdaemon.handlers.echo import EchoProtocol
from wsdaemon.tls import ServerTLS, TLSServerFactory


def connected_pair() -> tuple[Connection, socket.socket, MemoryReactorClock]:
    """Twisted's TCP transport over one end of a socket pair, and the other end to read from."""
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    theirs.setblocking(False)
    reactor = MemoryReactorClock()
    tcp = Connection(ours, Protocol(), reactor)
    tcp.connected = True
    return tcp, theirs, reactor


def received(peer: socket.socket) -> bytes:
    """Everything the peer can read now."""
    chunks = []
    while True:
        try:
            chunk = peer.recv(1 << 20)
        except BlockingIOError:
            return b"".join(chunks)
        chunks.append(chunk)


def wrapped(tcp: Connection) -> ProtocolWrapper:
    """A forwarding wrapper (as the same-port switch is) over ``tcp``."""
    wrapper = ProtocolWrapper(WrappingFactory(None), Protocol())
    wrapper.transport = tcp
    return wrapper


def test_an_empty_buffer_sends_at_once_without_registering_for_writing() -> None:
    tcp, peer, reactor = connected_pair()
    socket = immediate_socket(wrapped(tcp))
    assert socket is tcp
    send_now(socket, b"frame")
    assert received(peer) == b"frame"
    assert tcp not in reactor.getWriters()
    assert not tcp.dataBuffer and not tcp._tempDataLen


def test_bytes_already_buffered_go_first() -> None:
    tcp, peer, reactor = connected_pair()
    tcp.write(b"first ")
    send_now(tcp, b"second")
    assert received(peer) == b""  # both wait for the reactor, in order
    assert tcp in reactor.getWriters()
    tcp.doWrite()
    assert received(peer) == b"first second"


def test_what_the_kernel_does_not_take_is_buffered_and_follows_in_order() -> None:
    tcp, peer, reactor = connected_pair()
    big = bytes(range(256)) * 8192  # 2 MiB: more than a socket pair's buffer
    send_now(tcp, big)
    send_now(tcp, b"after")
    assert tcp in reactor.getWriters()
    got = received(peer)
    assert 0 < len(got) < len(big)
    while tcp.dataBuffer or tcp._tempDataLen:
        tcp.doWrite()
        got += received(peer)
    assert got == big + b"after"


def test_a_closing_transport_keeps_twisteds_write() -> None:
    tcp, peer, _ = connected_pair()
    tcp.disconnecting = True
    send_now(tcp, b"late")
    assert received(peer) == b""
    assert tcp._tempDataBuffer == [b"late"]


def test_tls_and_test_transports_keep_their_own_write() -> None:
    tcp, _peer, _ = connected_pair()
    tls = TLSMemoryBIOProtocol.__new__(TLSMemoryBIOProtocol)  # only its class matters: it overrides write
    tls.transport = tcp
    assert immediate_socket(wrapped(tls)) is None
    assert immediate_socket(tls) is None
    assert immediate_socket(StringTransport()) is None


def masked(opcode: int, payload: bytes) -> bytes:
    """One small masked client frame (the mask is zero: the payload reads as itself)."""
    return bytes((0x80 | opcode, 0x80 | len(payload))) + bytes(4) + payload


def test_the_adapter_answers_at_once_but_a_closing_close_leaves_with_the_fin() -> None:
    """An echo goes out during the read; the Close before our FIN waits for the reactor, to leave with it."""
    tcp, peer, reactor = connected_pair()
    wire = WebSocketWireProtocol(EchoProtocol(), WebSocketConnection(Side.SERVER), reactor)
    tcp.protocol = wire
    wire.makeConnection(tcp)
    wire.finishNegotiation()
    wire.dataReceived(masked(0x1, b"hi"))
    assert received(peer) == b"\x81\x02hi"
    assert tcp not in reactor.getWriters()
    wire.dataReceived(masked(0x8, b"\x03\xe8"))  # Close 1000: we answer and close TCP
    assert received(peer) == b""
    assert tcp in reactor.getWriters() and tcp.disconnecting
    tcp.doWrite()
    assert received(peer) == b"\x88\x02\x03\xe8"


def test_writes_outside_a_read_leave_at_the_end_of_the_turn_in_one_send_without_registering() -> None:
    """Two broadcasts in one turn: nothing before the turn ends, then one send, and the socket never waits on epoll."""
    tcp, peer, reactor = connected_pair()
    wire = WebSocketWireProtocol(
        EchoProtocol(), WebSocketConnection(Side.SERVER), reactor, turn=TurnWriter(reactor, 1 << 16)
    )
    tcp.protocol = wire
    wire.makeConnection(tcp)
    wire.finishNegotiation()
    sends: list[int] = []
    send = tcp.writeSomeData
    tcp.writeSomeData = lambda data: sends.append(len(data)) or send(data)  # type: ignore[method-assign]
    wire.sendTextMessage("one")
    wire.sendTextMessage("two")
    assert received(peer) == b""
    reactor.advance(0)  # the turn ends
    assert received(peer) == b"\x81\x03one\x81\x03two"
    assert sends == [10]
    assert tcp not in reactor.getWriters()


# --- TLS: the records that answer a read go at once, the others keep the deferred write -------


class Echo(Protocol):
    """Writes each read back: an answer to a read."""

    def dataReceived(self, data: bytes) -> None:
        self.transport.write(data)  # type: ignore[union-attr]


class TLSPair:
    """wsdaemon's TLS protocol over Twisted's TCP transport on a socket pair, and a pyOpenSSL client at the other end.

    The reactor is a ``MemoryReactor``: the test plays its part by handing what
    the client sent to the server's ``dataReceived``, as ``doRead`` would.
    """

    def __init__(self, tmp_path: Path) -> None:
        ca = ThrowawayCA(tmp_path / "pki")
        issued = ca.issue("localhost", ("localhost",), stem="server")
        tls = ServerTLS(TLSConfig(str(issued.cert_path), str(issued.key_path)))
        self.tcp, self.peer, self.reactor = connected_pair()
        self.echo = Echo()
        factory = TLSServerFactory(tls, Factory.forProtocol(Echo), self.reactor)
        self.server = factory.buildProtocol(None)
        assert isinstance(self.server, ImmediateTLSProtocol)
        self.server.wrappedProtocol = self.echo
        self.server.makeConnection(self.tcp)
        context = SSL.Context(SSL.TLS_CLIENT_METHOD)
        context.load_verify_locations(str(ca.path))
        self.client = SSL.Connection(context, None)
        self.client.set_tlsext_host_name(b"localhost")
        self.client.set_connect_state()

    def client_sends(self) -> None:
        """What the client has for the server arrives, as one read."""
        try:
            self.server.dataReceived(self.client.bio_read(1 << 16))
        except SSL.WantReadError:
            pass

    def client_receives(self) -> None:
        """What the server's socket delivered so far reaches the client's TLS."""
        data = received(self.peer)
        if data:
            self.client.bio_write(data)

    def handshake(self) -> None:
        for _ in range(10):
            try:
                self.client.do_handshake()
            except SSL.WantReadError:
                self.client_sends()
                assert self.tcp not in self.reactor.getWriters()  # each flight left at once
                self.client_receives()
            else:
                self.client_sends()  # the client's Finished: the server is done too
                assert self.server._handshakeDone
                return
        raise AssertionError("no handshake")

    def client_reads(self) -> bytes:
        self.client_receives()
        try:
            return self.client.recv(1 << 16)
        except SSL.WantReadError:
            return b""


def test_tls_handshake_flights_and_answers_to_a_read_are_sent_at_once(tmp_path: Path) -> None:
    pair = TLSPair(tmp_path)
    pair.handshake()
    pair.client.send(b"ping")
    pair.client_sends()
    assert pair.tcp not in pair.reactor.getWriters()
    assert pair.client_reads() == b"ping"


def test_tls_writes_outside_a_read_wait_for_the_reactor_and_keep_their_order(tmp_path: Path) -> None:
    pair = TLSPair(tmp_path)
    pair.handshake()
    pair.client_reads()  # the session tickets that followed the handshake
    pair.echo.transport.write(b"broadcast")  # type: ignore[union-attr]  # no read in progress
    assert pair.tcp in pair.reactor.getWriters()
    assert pair.client_reads() == b""
    pair.client.send(b"answer")
    pair.client_sends()  # the answer queues behind the broadcast, not ahead of it
    pair.tcp.doWrite()
    assert pair.client_reads() + pair.client_reads() == b"broadcastanswer"


def test_tls_records_of_one_read_leave_in_one_send(tmp_path: Path) -> None:
    pair = TLSPair(tmp_path)
    pair.handshake()
    pair.client_reads()
    sends: list[int] = []
    send = pair.tcp.writeSomeData
    pair.tcp.writeSomeData = lambda data: sends.append(len(data)) or send(data)  # type: ignore[method-assign]
    pair.client.send(b"one")
    pair.client.send(b"two")  # two records in one read: two answers, two records back
    pair.client_sends()
    assert len(sends) == 1
    assert pair.client_reads() + pair.client_reads() == b"onetwo"
