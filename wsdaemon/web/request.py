"""The request every wsdaemon listener serves: it knows its client, and who that client proved to be."""

from __future__ import annotations

from twisted.web.server import Request

from wsdaemon.adapter.switching import SwitchingProtocol
from wsdaemon.admission import resolve_client_address
from wsdaemon.interfaces import ClientAddress, Identity


class DaemonRequest(Request):
    """A Request that knows its client, drives the handshake clock and sends no version banner.

    Attributes:
        clientAddress: the client as the listener's admission resolved it; set
            before any resource renders the request (behind a trusted proxy,
            the proxied client; compare Twisted's ``getClientAddress()``, the TCP peer).
        identity: who the client proved to be, set by a WebSocket endpoint's
            authenticator before the handler's ``buildProtocol``; None when anonymous.
    """

    clientAddress: ClientAddress | None = None
    identity: Identity | None = None

    def process(self) -> None:
        """Resolve the client, and stop the connection's handshake clock while this request is served."""
        wrapper = self.channel.transport
        if isinstance(wrapper, SwitchingProtocol):
            self.clientAddress = wrapper.resolveClient(self)
            wrapper.requestStarted()
            self.notifyFinish().addBoth(lambda _: wrapper.requestFinished())
        else:
            self.clientAddress = resolve_client_address(self.getClientAddress())
        super().process()  # type: ignore[no-untyped-call]  # super(): mypy#16653

    def write(self, data: bytes) -> None:
        """Drop twisted.web's ``Server: TwistedWeb/x.y`` before the head goes out."""
        if not self.startedWriting:
            self.responseHeaders.removeHeader(b"server")
        super().write(data)  # type: ignore[no-untyped-call]  # super(): mypy#16653
