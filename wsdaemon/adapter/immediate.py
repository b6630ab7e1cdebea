"""Send a frame at once when nothing waits before it: one system call per message, not three.

Twisted's ``FileDescriptor.write`` only buffers: it registers the socket for
writing (an ``epoll_ctl``), and on the next reactor turn ``doWrite`` sends and
unregisters it (another ``epoll_ctl``), after a dispatch through the reactor's
loop. For an echo that is most of the cost of an answer; asyncio's transports
try the ``send`` first. :func:`send_now` does the same over Twisted's TCP
transport: while its buffer is empty it hands the bytes to the transport's own
``writeSomeData`` (the ``send`` that Twisted's ``doWrite`` would make, with
``EWOULDBLOCK`` as 0) and buffers with ``write`` only what the kernel did not
take, so order, backpressure and error handling stay Twisted's. The adapter
uses it for the answers to a read, and :class:`~wsdaemon.adapter.turn.TurnWriter`
for what is written outside one (broadcasts, timers): those wait for the end of
the reactor's turn, so that several publishes still reach a member in one
``send`` (sent one by one at once, fan-out was half as fast).
A Close after which we close TCP keeps Twisted's write, leaving in the same
reactor turn as the FIN (sent at once, it made a WebSocket open and close cost
16% more server CPU, and so did sending the 101 at once).

Only wrappers that forward ``write`` unchanged (the same-port switch, the PROXY
protocol wrapper) are looked through. TLS must encrypt the bytes first, so
:class:`ImmediateTLSProtocol` applies the same rule one layer down: the records
that a read produces (handshake flights, the 101, the answers) go to the socket
at once; records written outside a read (broadcasts, pings) keep the deferred
write.

This is one of the two named exceptions to the rule against private Twisted API
(docs/architecture.md §3, rule 9; the other is in ``tls_connection.py``): "is the buffer empty" needs
``FileDescriptor._tempDataLen`` beside the public ``dataBuffer``, and the TLS
records leave ``TLSMemoryBIOProtocol`` through ``_flushSendBIO``. A Twisted
without them gets plain ``write``, and tests/integration/test_immediate_write.py
fails, so a rename is seen, not silently slow.
"""

from __future__ import annotations

from OpenSSL.SSL import WantReadError
from twisted.internet.tcp import Connection
from twisted.protocols.policies import ProtocolWrapper
from twisted.protocols.tls import TLSMemoryBIOProtocol

from wsdaemon.adapter.transport import layers


def immediate_socket(transport: object) -> Connection | None:
    """The TCP connection under ``transport`` that :func:`send_now` may use, or None to keep ``write``.

    None when a layer between changes what is written (TLS, which
    :class:`ImmediateTLSProtocol` covers one layer down), when the transport is
    no Twisted TCP connection (a test's ``StringTransport``), or when Twisted
    no longer has the buffer attribute the check needs. The adapter keeps the
    connection it returns, not a closure: an idle connection pays one reference.
    """
    for layer in layers(transport):
        if isinstance(layer, Connection):
            return layer if hasattr(layer, "_tempDataLen") else None
        if not isinstance(layer, ProtocolWrapper) or type(layer).write is not ProtocolWrapper.write:
            return None
    return None


def send_now(tcp: Connection, data: bytes) -> None:
    """Write ``data`` on ``tcp``: sent at once if nothing is buffered before it, else after what is."""
    # The buffer check is Twisted's own test in doWrite for "nothing left to send".
    if tcp.dataBuffer or tcp._tempDataLen or tcp.disconnecting or not tcp.connected:
        tcp.write(data)
        return
    sent = tcp.writeSomeData(data)
    if isinstance(sent, Exception):  # the connection is gone: doWrite sees it again and closes as usual
        tcp.write(data)
    elif sent < len(data):
        tcp.write(data[sent:])


#: Frames queued together are joined for one :func:`send_now` up to this size; a larger answer
#: (a fragmented 1 MiB message) keeps Twisted's write: the extra copy made a 1 MiB echo 0.87x.
JOIN_MAX_BYTES = 64 * 1024


def joined_for_send(chunks: list[bytes]) -> bytes | None:
    """``chunks`` as one ``bytes`` for :func:`send_now`, or None when that would copy a large answer."""
    if len(chunks) == 1:
        return chunks[0]
    return b"".join(chunks) if sum(map(len, chunks)) <= JOIN_MAX_BYTES else None


#: Records gathered from one read before they are sent: about 128 KiB (eight full records) per ``send``.
_BATCH_RECORDS = 8


class ImmediateTLSProtocol(TLSMemoryBIOProtocol):
    """Twisted's TLS protocol, sending the records that answer a read at once (see the module docstring).

    The records one read produces (a handshake flight and the session tickets
    after it, the 101, several answers) are gathered and sent together when
    the read is done: one ``send`` rather than one per record.
    """

    _socket: Connection | None = None
    #: While a read is handled: the records it produced so far; None between reads.
    _answers: list[bytes] | None = None

    def makeConnection(self, transport: object) -> None:
        """Find the socket below that records may go to at once (None: always the transport's ``write``)."""
        self._socket = immediate_socket(transport)
        super().makeConnection(transport)  # type: ignore[no-untyped-call]

    def dataReceived(self, data: bytes) -> None:
        """Decrypt and deliver ``data``; what that makes us send goes out before this returns."""
        tcp = self._socket
        if tcp is None:
            super().dataReceived(data)  # type: ignore[no-untyped-call]
            return
        answers: list[bytes] = []
        self._answers = answers
        try:
            super().dataReceived(data)  # type: ignore[no-untyped-call]
        finally:
            self._answers = None
            if answers:
                send_now(tcp, b"".join(answers))  # one record: join hands back the same bytes, no copy

    def _flushSendBIO(self) -> None:
        """Twisted's: move the encrypted bytes to the transport; during a read, gather them for one send."""
        answers = self._answers
        if answers is None:
            super()._flushSendBIO()  # type: ignore[no-untyped-call]
            return
        try:
            answers.append(self._tlsConnection.bio_read(2**15))  # Twisted's read size
        except WantReadError:
            return  # nothing to send
        if len(answers) >= _BATCH_RECORDS and self._socket is not None:  # a large answer: send as it grows
            send_now(self._socket, b"".join(answers))
            answers.clear()
