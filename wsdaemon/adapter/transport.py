"""The transport under the adapter's protocols: its type for the checker, and the socket under its wrappers."""

from __future__ import annotations

from collections.abc import Iterator

from twisted.internet.interfaces import IConsumer, IPushProducer, ITCPTransport
from twisted.protocols.policies import ProtocolWrapper


class IStreamTransport(ITCPTransport, IConsumer, IPushProducer):
    """A TCP connection, or TLS over one, or a ``ProtocolWrapper`` standing in for either.

    It takes a producer (backpressure from the peer pauses ours) and is a push
    producer itself (``pauseProducing`` stops reading from the peer). Twisted's
    transports have all these methods but declare only ``ITCPTransport``, and
    ``Protocol.transport`` says just ``ITransport``; so nothing provides this
    interface at run time, it only tells mypy what the adapter relies on.
    """


#: Wrappers to look through: each keeps the transport it writes to as ``.transport``.
_MAX_WRAPPERS = 8


def layers(transport: object) -> Iterator[object]:
    """``transport``, then each transport below it through its ``ProtocolWrapper`` layers, down to the socket."""
    for _ in range(_MAX_WRAPPERS):
        yield transport
        below = getattr(transport, "transport", None) if isinstance(transport, ProtocolWrapper) else None
        if below is None:
            return
        transport = below
    yield transport


def tcp_transport(transport: object) -> object:
    """The transport at the bottom of ``transport``'s wrappers: the TCP connection under TLS.

    ``TLSMemoryBIOProtocol`` and wsdaemon's switching wrapper are
    ``ProtocolWrapper`` objects: reading an attribute they lack forwards to the
    transport below, but *setting* one sets it on the wrapper. Tuning that
    belongs to the socket (``bufferSize``, ``SEND_LIMIT``) must be set on the
    object this returns, or it is silently lost on wss.
    """
    *_, bottom = layers(transport)
    return bottom
