"""The request every wsdaemon listener serves: it knows its client, and who that client proved to be."""

from __future__ import annotations

from twisted.web.resource import IResource
from twisted.web.server import Request

from wsdaemon.adapter.switching import SwitchingProtocol
from wsdaemon.admission import resolve_client_address
from wsdaemon.interfaces import ClientAddress, Identity
from wsdaemon.web.channel import DaemonChannel


class HeadersOnly:
    """A resource's answer to HEAD: what it would send for GET, less the body (RFC 9110 §9.3.2).

    twisted.web answers HEAD from the GET rendering, but logs "HEAD request ... is
    returning a message body. I think I'll eat it." for every resource that renders
    a body, which is every page here: a HEAD health check would flood the log. This
    drops the body itself and keeps its length in ``Content-Length``.
    """

    def __init__(self, resource: IResource) -> None:
        self.resource = resource

    def render(self, request: Request) -> bytes | int:
        """The resource's rendering, with the body swapped for its length (NOT_DONE_YET passes through)."""
        body: bytes | int = self.resource.render(request)
        if isinstance(body, bytes) and body and request.method == b"HEAD":
            request.setHeader(b"Content-Length", b"%d" % len(body))
            return b""
        return body

    def __repr__(self) -> str:
        return f"<HEAD of {self.resource!r}>"


class DaemonRequest(Request):
    """A Request that knows its client, drives the handshake clock, bounds its body and sends no version banner.

    Attributes:
        forwarded_secure: a trusted proxy's ``X-Forwarded-Proto``/``Forwarded: proto=``
            said https, so :meth:`isSecure` is true (and URLs and the Origin check say so).
        clientAddress: the client as the listener's admission resolved it; set
            before any resource renders the request (behind a trusted proxy,
            the proxied client; compare Twisted's ``getClientAddress()``, the TCP peer).
        identity: who the client proved to be, set by a WebSocket endpoint's
            authenticator before the handler's ``buildProtocol``; None when anonymous.
    """

    clientAddress: ClientAddress | None = None
    identity: Identity | None = None
    forwarded_secure = False  # a trusted proxy said the client spoke https
    body_bytes = 0  # of the request body received so far (bounded by http_max_body_bytes)

    def process(self) -> None:
        """Resolve the client, and stop the connection's handshake clock while this request is served."""
        wrapper = self.channel.transport
        if isinstance(wrapper, SwitchingProtocol):
            self.clientAddress, self.forwarded_secure = wrapper.resolveClient(self)
            wrapper.requestStarted()
            self.notifyFinish().addBoth(lambda _: wrapper.requestFinished())
        else:
            self.clientAddress = resolve_client_address(self.getClientAddress())
        super().process()  # type: ignore[no-untyped-call]  # super(): mypy#16653

    def isSecure(self) -> bool:
        """TLS on this connection, or (behind a trusted proxy) on the client's connection to the proxy."""
        return self.forwarded_secure or bool(super().isSecure())  # type: ignore[no-untyped-call]

    def render(self, resrc: IResource) -> None:
        """Render ``resrc``; for HEAD through :class:`HeadersOnly`, so no body is made only to be thrown away."""
        super().render(HeadersOnly(resrc) if self.method == b"HEAD" else resrc)  # type: ignore[no-untyped-call]

    def handleContentChunk(self, data: bytes) -> None:
        """Keep a piece of the body only while the body is within ``http_max_body_bytes`` (else 413)."""
        channel = self.channel
        if isinstance(channel, DaemonChannel) and not channel.body_received(len(data), self.body_bytes):
            return
        self.body_bytes += len(data)
        super().handleContentChunk(data)  # type: ignore[no-untyped-call]  # super(): mypy#16653

    def write(self, data: bytes) -> None:
        """Drop twisted.web's ``Server: TwistedWeb/x.y`` before the head goes out."""
        if not self.startedWriting:
            self.responseHeaders.removeHeader(b"server")
        super().write(data)  # type: ignore[no-untyped-call]  # super(): mypy#16653
