"""Send a frame at once when nothing waits before it: one system call per message, not three.

Twisted's ``FileDescriptor.write`` only buffers: it registers the socket for
writing (an ``epoll_ctl``), and on the next reactor turn ``doWrite`` sends and
unregisters it (another ``epoll_ctl``), after a dispatch through the reactor's
loop. For an echo that is most of the cost of an answer; asyncio's transports
try the ``send`` first. :func:`immediate_writer`
does the same over Twisted's TCP transport: while its buffer is empty it hands
the bytes to the transport's own ``writeSomeData`` (the ``send`` that Twisted's
``doWrite`` would make, with ``EWOULDBLOCK`` as 0) and buffers with ``write``
only what the kernel did not take, so order, backpressure and error handling
stay Twisted's. The adapter uses it only for the answers to a read: a
broadcast is better off with Twisted's deferred write, which lets several
publishes reach one member in a single ``send``.

Only wrappers that forward ``write`` unchanged (the same-port switch, the PROXY
protocol wrapper) are looked through; TLS, which must encrypt the bytes, gets
plain ``write``.

This is the one named exception to the rule against private Twisted API
(docs/architecture.md §3, rule 9): "is the buffer empty" needs
``FileDescriptor._tempDataLen`` beside the public ``dataBuffer``. A Twisted
without it gets plain ``write``, and tests/integration/test_immediate_write.py
fails, so a rename is seen, not silently slow.
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.internet.tcp import Connection
from twisted.protocols.policies import ProtocolWrapper

from wsdaemon.adapter.transport import layers


def _socket_under(transport: object) -> Connection | None:
    """The TCP connection under ``transport`` if every wrapper between only forwards ``write``."""
    for layer in layers(transport):
        if isinstance(layer, Connection):
            return layer
        if not isinstance(layer, ProtocolWrapper) or type(layer).write is not ProtocolWrapper.write:
            return None
    return None


def immediate_writer(transport: object) -> Callable[[bytes], None]:
    """A ``write(data)`` for ``transport`` that sends at once when its socket has nothing buffered.

    Anything else (TLS, a test's ``StringTransport``, a wrapper that changes
    what it writes) gets the transport's own ``write``.
    """
    tcp = _socket_under(transport)
    write = transport.write  # type: ignore[attr-defined]
    if tcp is None or not hasattr(tcp, "_tempDataLen"):
        return write  # type: ignore[no-any-return]
    buffered: Callable[[bytes], None] = tcp.write  # Twisted leaves write unannotated

    def write_now(data: bytes) -> None:
        # The buffer check is Twisted's own test in doWrite for "nothing left to send".
        if tcp.dataBuffer or tcp._tempDataLen or tcp.disconnecting or not tcp.connected:
            buffered(data)
            return
        sent = tcp.writeSomeData(data)
        if isinstance(sent, Exception):  # the connection is gone: doWrite sees it again and closes as usual
            buffered(data)
        elif sent < len(data):
            buffered(data[sent:])

    return write_now
