"""A wss connection whose client never sent TLS's close_notify is freed at once, not by the cycle collector.

Python's ``ssl`` clients, among others, close TCP without a ``close_notify``;
OpenSSL's last read then fails, and the ``Failure`` Twisted makes of it inside its
``except`` held its own frame through its traceback: a garbage cycle holding the
TLS protocol, the TCP transport and the ``SSL.Connection`` (with what OpenSSL
keeps for it). ``DaemonTLSProtocol`` cleans that failure. Real TLS over Twisted's
real TCP transport on a socket pair (see ``TLSPair``); the collector is off, so
only reference counting can free anything. The test also pins the private
Twisted name the fix overrides, ``TLSMemoryBIOProtocol._tlsShutdownFinished``.
"""

from __future__ import annotations

import weakref
from pathlib import Path

import pytest
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.protocols.tls import TLSMemoryBIOProtocol
from twisted.python.failure import Failure

from tests.integration.test_immediate_write import TLSPair
from wsdaemon.adapter.tls_connection import DaemonTLSProtocol


def test_the_overridden_twisted_method_still_exists() -> None:
    """A Twisted that renamed it would silently skip the fix: this says so instead."""
    assert "_tlsShutdownFinished" in vars(DaemonTLSProtocol)
    assert callable(getattr(TLSMemoryBIOProtocol, "_tlsShutdownFinished", None))


@pytest.mark.parametrize("server_closes_first", [False, True], ids=["client vanished", "server closed"])
def test_a_connection_ended_without_close_notify_is_freed_at_once(
    no_collector: None, tmp_path: Path, server_closes_first: bool
) -> None:
    pair = TLSPair(tmp_path)
    pair.handshake()
    pair.client.send(b"ping")
    pair.client_sends()
    assert pair.client_reads() + pair.client_reads() == b"ping"
    lost: list[Failure] = []
    pair.echo.connectionLost = lost.append  # type: ignore[method-assign]
    if server_closes_first:
        pair.server.loseConnection()  # our close_notify goes out; the client never answers it
    server = weakref.ref(pair.server)
    openssl = weakref.ref(pair.server._tlsConnection)
    # The socket goes away as Twisted's TCP transport sees it (it drops its protocol, then tells it).
    pair.tcp.protocol = pair.server  # TLSPair feeds the server itself; the transport only writes for it
    pair.tcp.connectionLost(Failure(ConnectionDone()))
    assert len(lost) == 1 and lost[0].check(ConnectionLost, ConnectionDone)
    del pair
    assert (server(), openssl()) == (None, None)
