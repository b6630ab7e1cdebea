"""The immediate writer: a frame goes to the socket at once when nothing waits before it, and never overtakes.

These drive Twisted's real TCP transport class over a Unix socket pair (a real
socket, so they live with the integration tests; no network): the reactor is a
``MemoryReactor``, so "buffered" is visible as the transport asking to be
registered for writing. They also pin the two buffer attributes of Twisted's
``FileDescriptor`` that the writer reads: a Twisted that renames them fails here.
"""

from __future__ import annotations

import socket

from twisted.internet.protocol import Protocol
from twisted.internet.tcp import Connection
from twisted.internet.testing import MemoryReactor, StringTransport
from twisted.protocols.policies import ProtocolWrapper, WrappingFactory
from twisted.protocols.tls import TLSMemoryBIOProtocol

from wsdaemon.adapter.immediate import immediate_writer


def connected_pair() -> tuple[Connection, socket.socket, MemoryReactor]:
    """Twisted's TCP transport over one end of a socket pair, and the other end to read from."""
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    theirs.setblocking(False)
    reactor = MemoryReactor()
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
    immediate_writer(wrapped(tcp))(b"frame")
    assert received(peer) == b"frame"
    assert tcp not in reactor.getWriters()
    assert not tcp.dataBuffer and not tcp._tempDataLen


def test_bytes_already_buffered_go_first() -> None:
    tcp, peer, reactor = connected_pair()
    tcp.write(b"first ")
    immediate_writer(tcp)(b"second")
    assert received(peer) == b""  # both wait for the reactor, in order
    assert tcp in reactor.getWriters()
    tcp.doWrite()
    assert received(peer) == b"first second"


def test_what_the_kernel_does_not_take_is_buffered_and_follows_in_order() -> None:
    tcp, peer, reactor = connected_pair()
    write = immediate_writer(tcp)
    big = bytes(range(256)) * 8192  # 2 MiB: more than a socket pair's buffer
    write(big)
    write(b"after")
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
    immediate_writer(tcp)(b"late")
    assert received(peer) == b""
    assert tcp._tempDataBuffer == [b"late"]


def test_tls_and_test_transports_get_their_own_write() -> None:
    tcp, _peer, _ = connected_pair()
    tls = TLSMemoryBIOProtocol.__new__(TLSMemoryBIOProtocol)  # only its class matters: it overrides write
    tls.transport = tcp
    switch = wrapped(tls)
    assert immediate_writer(switch) == switch.write
    assert immediate_writer(tls) == tls.write
    string = StringTransport()
    assert immediate_writer(string) == string.write
