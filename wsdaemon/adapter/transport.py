"""The type of the transport under the adapter's protocols, for the type checker."""

from __future__ import annotations

from twisted.internet.interfaces import IConsumer, IPushProducer, ITCPTransport


class IStreamTransport(ITCPTransport, IConsumer, IPushProducer):
    """A TCP connection, or TLS over one, or a ``ProtocolWrapper`` standing in for either.

    It takes a producer (backpressure from the peer pauses ours) and is a push
    producer itself (``pauseProducing`` stops reading from the peer). Twisted's
    transports have all these methods but declare only ``ITCPTransport``, and
    ``Protocol.transport`` says just ``ITransport``; so nothing provides this
    interface at run time, it only tells mypy what the adapter relies on.
    """
