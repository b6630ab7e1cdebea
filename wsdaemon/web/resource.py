"""The twisted.web Resource at each WebSocket endpoint (DESIGN §2.2, seam 3).

``render_GET`` turns the twisted.web request into a neutral ``RequestHead``,
lets the core judge the handshake, and either answers with the status the
error carries or writes the 101 and switches the connection to WebSocket.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.interfaces import IReactorTime, ISSLTransport
from twisted.logger import Logger
from twisted.web import http
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from wsdaemon.adapter.deadlines import Ticker
from wsdaemon.adapter.protocol import WebSocketWireProtocol
from wsdaemon.adapter.switching import SwitchingProtocol, peer_host
from wsdaemon.core import (
    Connection,
    EndpointPolicy,
    HandshakeError,
    Limits,
    RequestHead,
    ServiceUnavailable,
    Side,
    accept_request,
)
from wsdaemon.core.http import REASONS
from wsdaemon.interfaces import ConnectionRejected, WebSocketServerFactory


def request_head(request: Request) -> RequestHead:
    """The core's neutral view of a twisted.web request."""
    headers = tuple(
        (name.decode("latin-1").lower(), value.decode("latin-1"))
        for name, values in request.requestHeaders.getAllRawHeaders()
        for value in values
    )
    return RequestHead(
        method=request.method.decode("latin-1"),
        target=request.uri.decode("latin-1"),
        version=request.clientproto.decode("latin-1"),
        headers=headers,
    )


def refuse(
    request: Request, status: int, headers: list[tuple[str, str]] | tuple[tuple[str, str], ...], text: str
) -> bytes:
    """Answer a refused upgrade with ``status``, ``headers`` and a short plain-text reason."""
    phrase = REASONS[status].encode("ascii") if status in REASONS else http.RESPONSES.get(status, b"Error")
    request.setResponseCode(status, phrase)
    for name, value in headers:
        request.setHeader(name, value)
    request.setHeader("Content-Type", "text/plain; charset=utf-8")
    request.setHeader("Cache-Control", "no-store")
    return (text + "\n").encode("utf-8")


class WebSocketResource(Resource):
    """An endpoint that upgrades requests to WebSocket and serves them with ``factory``'s handlers."""

    isLeaf = True
    log = Logger()

    def __init__(
        self,
        factory: WebSocketServerFactory[Any],
        reactor: IReactorTime,
        *,
        policy: EndpointPolicy | None = None,
        limits: Limits | None = None,
        path: str = "",
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # super(): mypy#16653
        self.factory = factory
        self.reactor = reactor
        self.policy = policy or EndpointPolicy()
        self.limits = limits or Limits()
        self.path = path
        self.ticker = Ticker(reactor)  # the idle and keepalive clock of every connection here

    def render(self, request: Request) -> bytes | int:
        """GET (and HEAD, answered from GET) upgrade; any other method gets 405 with ``Allow``."""
        if request.method in (b"GET", b"HEAD"):
            return super().render(request)  # type: ignore[no-untyped-call,no-any-return]  # super(): mypy#16653
        return refuse(request, 405, [("Allow", "GET, HEAD")], "a WebSocket endpoint answers GET only")

    def render_GET(self, request: Request) -> bytes | int:
        """Upgrade, or answer 400/403/426/503 (a plain GET gets 426)."""
        wrapper = request.channel.transport
        if not isinstance(wrapper, SwitchingProtocol):
            self.log.error("WebSocketResource needs its Site wrapped in a SwitchingFactory")
            return refuse(request, 500, [], "server misconfigured")
        try:
            self._check_capacity(wrapper)
            accepted = accept_request(request_head(request), self.policy, secure=ISSLTransport.providedBy(wrapper))
            handler = self.factory.buildProtocol(request)
            if handler is None:
                raise ConnectionRejected(403, "connection refused by the endpoint's handler")
        except HandshakeError as error:
            return refuse(request, error.status, error.headers, str(error))
        except ConnectionRejected as rejection:
            return refuse(request, rejection.status, rejection.headers, rejection.reason)
        protocol = WebSocketWireProtocol(
            handler,
            Connection(Side.SERVER, self.limits, accepted.extensions),
            self.reactor,
            path=self.path,
            subprotocol=accepted.subprotocol,
            keepalive=True,
            ticker=self.ticker,
        )
        wrapper.switchTo(protocol, accepted.response)
        protocol.finishNegotiation()
        return NOT_DONE_YET

    def _check_capacity(self, wrapper: SwitchingProtocol) -> None:
        """503 + Retry-After when this peer already holds ``max_connections_per_ip``."""
        host = peer_host(wrapper)
        if wrapper.factory.connections_from(host) > self.limits.max_connections_per_ip:
            raise ServiceUnavailable(f"too many connections from {host}")
