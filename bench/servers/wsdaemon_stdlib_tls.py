"""wsdaemon with its TLS done by Python's ``ssl`` module: what the wss targets would take.

An experiment, not how wsdaemon runs. The daemon's TLS listener wraps each
connection in Twisted's ``TLSMemoryBIOProtocol`` over pyOpenSSL (cffi calls,
and two exceptions built from OpenSSL's error queue on every read). The Python
peers get TLS from the C ``ssl`` module instead. This script starts the same
daemon, same config and same WebSocket code, with one thing swapped: each TLS
listener's factory is :class:`StdlibTLSFactory`, whose connections encrypt with
``ssl.SSLObject`` over two ``ssl.MemoryBIO`` objects, sending the records that
answer a read in one ``send`` as the daemon's own TLS protocol does.

It covers what the benchmark needs (TLS 1.2/1.3 with the certificate given,
close_notify both ways), not what a product would (SNI, client certificates,
reloads, ALPN): the config's TLS settings other than the listener are ignored.

    python bench/servers/wsdaemon_stdlib_tls.py CERT KEY --log-file L wsdaemon --config C
"""

from __future__ import annotations

import ssl
import sys
from typing import Any

from twisted.internet.interfaces import IAddress, IProtocol, IProtocolFactory, ISSLTransport
from twisted.protocols.policies import ProtocolWrapper, WrappingFactory
from twisted.python.failure import Failure
from zope.interface import implementer

from wsdaemon.adapter.immediate import immediate_socket, send_now

#: Twisted's TLS reads at most this much plaintext per call too.
_READ_BYTES = 2**16


@implementer(ISSLTransport)
class StdlibTLSProtocol(ProtocolWrapper):
    """TLS over one TCP connection, by ``ssl.SSLObject``; the WebSocket protocol above sees a transport."""

    def __init__(self, factory: StdlibTLSFactory, wrappedProtocol: IProtocol) -> None:
        super().__init__(factory, wrappedProtocol)  # type: ignore[no-untyped-call]
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._tls = factory.context.wrap_bio(self._incoming, self._outgoing, server_side=True)
        self._handshaken = False
        self._early: list[bytes] = []  # written before the handshake finished
        self._answers: list[bytes] | None = None  # during a read: the records it made
        self._socket: Any = None

    def makeConnection(self, transport: Any) -> None:
        self._socket = immediate_socket(transport)
        super().makeConnection(transport)  # type: ignore[no-untyped-call]

    def getPeerCertificate(self) -> None:
        return None

    def dataReceived(self, data: bytes) -> None:
        self._incoming.write(data)
        self._answers = []
        try:
            if self._handshaken or self._handshake():
                self._read()
        finally:
            self._send_answers()

    def _send_answers(self) -> None:
        """Send what the read being handled made, in one ``send``; after it, writes go out as made."""
        answers, self._answers = self._answers, None
        if not answers:
            return
        out = b"".join(answers)
        if self._socket is not None:
            send_now(self._socket, out)
        else:
            self.transport.write(out)

    def _handshake(self) -> bool:
        try:
            self._tls.do_handshake()
        except ssl.SSLWantReadError:
            self._flush()
            return False
        except ssl.SSLError:
            self._flush()
            self.transport.abortConnection()
            return False
        self._handshaken = True
        self._flush()
        early, self._early = self._early, []
        for data in early:
            self.write(data)
        return True

    def _read(self) -> None:
        tls, incoming, deliver = self._tls, self._incoming, self.wrappedProtocol.dataReceived
        # MemoryBIO.pending says when nothing is left to decrypt: no exception to end a read.
        while incoming.pending or tls.pending():
            try:
                plain = tls.read(_READ_BYTES)
            except ssl.SSLWantReadError:
                break  # half a record: the rest comes with the next read
            except ssl.SSLZeroReturnError:  # the peer's close_notify
                self._flush()
                self.transport.loseConnection()
                return
            except ssl.SSLError:
                self.transport.abortConnection()
                return
            if not plain:
                break
            deliver(plain)
        self._flush()

    def _flush(self) -> None:
        out = self._outgoing.read()
        if not out:
            return
        if self._answers is not None:
            self._answers.append(out)
        else:
            self.transport.write(out)

    def write(self, data: bytes) -> None:
        if self.disconnecting:
            return
        if not self._handshaken:
            self._early.append(data)
            return
        self._tls.write(data)
        self._flush()

    def writeSequence(self, data: list[bytes]) -> None:
        self.write(b"".join(data))

    def loseConnection(self) -> None:
        if self.disconnecting:
            return
        self.disconnecting = True
        if self._handshaken:
            try:
                self._tls.unwrap()  # our close_notify; we do not wait for the peer's
            except (ssl.SSLWantReadError, ssl.SSLError):
                pass
            self._flush()
        self._send_answers()  # before TCP's close, not after: the Close frame and close_notify go first
        self.transport.loseConnection()

    def connectionLost(self, reason: Failure) -> None:
        super().connectionLost(reason)  # type: ignore[no-untyped-call]
        self._early, self._socket = [], None


class StdlibTLSFactory(WrappingFactory):
    """Stands in for ``wsdaemon.tls.TLSServerFactory``: the same arguments, Python's ``ssl`` inside."""

    protocol = StdlibTLSProtocol
    context: ssl.SSLContext

    def __init__(self, tls: object, wrappedFactory: IProtocolFactory, reactor: object) -> None:
        super().__init__(wrappedFactory)  # type: ignore[no-untyped-call]
        self.context = CONTEXT

    def buildProtocol(self, addr: IAddress) -> StdlibTLSProtocol | None:  # type: ignore[override]
        inner = self.wrappedFactory.buildProtocol(addr)
        return None if inner is None else StdlibTLSProtocol(self, inner)


def server_context(cert: str, key: str) -> ssl.SSLContext:
    """What the ``websockets`` benchmark server uses: the module's server defaults."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context


CONTEXT: ssl.SSLContext

if __name__ == "__main__":
    CONTEXT = server_context(sys.argv[1], sys.argv[2])
    import wsdaemon.service

    wsdaemon.service.TLSServerFactory = StdlibTLSFactory  # type: ignore[misc,assignment]
    from twisted.application.twist._twist import Twist

    Twist.main([sys.argv[0], *sys.argv[3:]])
