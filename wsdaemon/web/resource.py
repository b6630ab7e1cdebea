"""The twisted.web Resource at each WebSocket endpoint (DESIGN §2.2, seam 3).

``render_GET`` runs a fixed pipeline: the daemon's admission (per-client
limits), the core's judgement of the handshake (origin included), the
endpoint's authenticator, the handler's ``buildProtocol``; each step may refuse
with the status its error carries. Then it writes the 101 and switches the
connection to WebSocket. An authenticator may answer later (a Deferred): the
request then waits, bounded, and the pipeline goes on when it answers.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, TimeoutError
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web import http
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from wsdaemon.adapter.deadlines import Ticker
from wsdaemon.adapter.message_rate import MessageRateGate
from wsdaemon.adapter.protocol import WebSocketWireProtocol
from wsdaemon.adapter.switching import SwitchingProtocol
from wsdaemon.adapter.turn import TurnWriter
from wsdaemon.admission import Admission
from wsdaemon.auth import NO_AUTHENTICATION
from wsdaemon.core import (
    Accepted,
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
from wsdaemon.interfaces import ConnectionRejected, IAuthenticator, Identity, WebSocketServerFactory
from wsdaemon.ratelimit import MessageRate
from wsdaemon.stats import EndpointStats
from wsdaemon.web.channel import DaemonChannel
from wsdaemon.web.request import DaemonRequest


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
    """An endpoint that upgrades requests to WebSocket and serves them with ``factory``'s handlers.

    Args:
        factory: the endpoint's handler factory.
        reactor: the clock of the connections' deadlines (and of the authenticator's).
        admission: the daemon's admission, the one its ``SwitchingFactory`` counts with.
        authenticator: who may connect (default: everyone, anonymously).
        auth_timeout_seconds: how long an asynchronous authenticator may take, then 503 (fail
            closed); None: the endpoint's ``handshake_timeout_seconds``.
        close_on_expiry: close with 1008 once the identity's ``expires_at`` has passed
            (checked by the endpoint's once-a-second tick, not by a timer per connection).
        policy: subprotocols, origins and compression of the endpoint.
        limits: the endpoint's limits.
        path: the endpoint's path, for its connections' log lines.
        message_rate: the endpoint's ``message_rate``/``message_burst`` per connection (None: off).
        stats: the endpoint's counters (handshakes, connections), kept across reloads.
    """

    isLeaf = True
    log = Logger()

    def __init__(
        self,
        factory: WebSocketServerFactory[Any],
        reactor: IReactorTime,
        *,
        admission: Admission,
        authenticator: IAuthenticator = NO_AUTHENTICATION,
        auth_timeout_seconds: float | None = None,
        close_on_expiry: bool = False,
        policy: EndpointPolicy | None = None,
        limits: Limits | None = None,
        path: str = "",
        message_rate: MessageRate | None = None,
        stats: EndpointStats | None = None,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # super(): mypy#16653
        self.factory = factory
        self.reactor = reactor
        self.admission = admission
        self.authenticator = authenticator
        self.close_on_expiry = close_on_expiry
        self.policy = policy or EndpointPolicy()
        self.limits = limits or Limits()
        self.auth_timeout_seconds = auth_timeout_seconds or self.limits.handshake_timeout_seconds
        self.path = path
        self.message_rate = message_rate
        self.stats = stats if stats is not None else EndpointStats()
        self.ticker = Ticker(reactor)  # the idle and keepalive clock of every connection here
        self.turn = TurnWriter(
            reactor, self.limits.write_buffer_high_bytes
        )  # broadcasts: one write per member and turn

    def render(self, request: Request) -> bytes | int:
        """GET (and HEAD, answered from GET) upgrade; any other method gets 405 with ``Allow``."""
        if request.method in (b"GET", b"HEAD"):
            answer: bytes | int = super().render(request)  # type: ignore[no-untyped-call]  # super(): mypy#16653
        else:
            answer = refuse(request, 405, [("Allow", "GET, HEAD")], "a WebSocket endpoint answers GET only")
        if isinstance(answer, bytes):  # refused now; an upgrade is counted by its connection
            self.stats.refused(request.code)
        return answer

    def render_GET(self, request: Request) -> bytes | int:
        """Admission (429, 503), the handshake (400/403/426; a plain GET gets 426), authentication, then the upgrade."""
        wrapper = request.channel.transport
        if (
            not isinstance(wrapper, SwitchingProtocol)
            or wrapper.ticket is None
            or not isinstance(request, DaemonRequest)
        ):
            self.log.error("WebSocketResource needs a DaemonSite wrapped in a SwitchingFactory")
            return refuse(request, 500, [], "server misconfigured")
        try:
            self.admission.check_upgrade(wrapper.ticket, self.limits, self.reactor.seconds())
            accepted = accept_request(request_head(request), self.policy, secure=request.isSecure())
        except HandshakeError as error:
            return refuse(request, error.status, error.response_headers(), str(error))
        try:
            verdict = self.authenticator.authenticate(request)
        except Exception:  # noqa: BLE001 - a refusal or a bug: either gets its answer, no traceback on the wire
            return self._not_authenticated(request, Failure())
        if isinstance(verdict, Deferred):
            return self._authenticate_later(request, wrapper, accepted, verdict)
        return self._upgrade(request, wrapper, accepted, verdict)

    def _upgrade(
        self, request: DaemonRequest, wrapper: SwitchingProtocol, accepted: Accepted, identity: Identity | None
    ) -> bytes | int:
        """Give the authenticated request to the handler's factory; switch to WebSocket unless it refuses."""
        request.identity = identity
        try:
            handler = self.factory.buildProtocol(request)
            if handler is None:
                raise ConnectionRejected(403, "connection refused by the endpoint's handler")
        except ConnectionRejected as rejection:
            if rejection.status == 403:
                self._log_refusal("handler refused {client} on {path}: {status} {reason}", request, rejection)
            return refuse(request, rejection.status, rejection.headers, rejection.reason)
        assert wrapper.ticket is not None  # checked by render_GET
        connection = Connection(Side.SERVER, self.limits, accepted.extensions)
        if self.message_rate is not None:
            handler = MessageRateGate(handler, connection, self.message_rate, self.reactor)
        protocol = WebSocketWireProtocol(
            handler,
            connection,
            self.reactor,
            path=self.path,
            subprotocol=accepted.subprotocol,
            keepalive=True,
            ticker=self.ticker,
            stats=self.stats,
            turn=self.turn,
            client=wrapper.ticket.address,
            identity=identity,
            expires_at=identity.expires_at if identity is not None and self.close_on_expiry else None,
        )
        wrapper.switchTo(protocol, accepted.response)
        if isinstance(request.channel, DaemonChannel):
            request.channel.switched(request)  # a channel and its request would otherwise be a garbage cycle
        protocol.finishNegotiation()
        return NOT_DONE_YET

    def _authenticate_later(
        self,
        request: DaemonRequest,
        wrapper: SwitchingProtocol,
        accepted: Accepted,
        pending: Deferred[Identity | None],
    ) -> int:
        """Wait for the authenticator's Deferred, at most ``auth_timeout_seconds``, then go on.

        The handshake clock is stopped while a request is served, so the wait has
        its own bound (503 after it, and the Deferred is cancelled). If the client
        goes away meanwhile the Deferred is cancelled, and nothing is built or answered.
        """
        gone = False

        def client_gone(reason: Failure) -> None:
            nonlocal gone
            gone = True
            pending.cancel()

        def decided(identity: Identity | None) -> None:
            if not gone:
                self._finish(request, self._upgrade(request, wrapper, accepted, identity))

        def failed(failure: Failure) -> None:
            if not gone:
                self._finish(request, self._not_authenticated(request, failure))

        request.notifyFinish().addErrback(client_gone)
        # Whatever the authenticator makes of the cancel (Twisted's Agent reports it as
        # ResponseNeverReceived), a check that ran out of time is a timeout: 503.
        pending.addTimeout(self.auth_timeout_seconds, self.reactor, onTimeoutCancel=_timed_out)
        pending.addCallbacks(decided, failed)
        pending.addErrback(self._answer_bug, request, wrapper)
        return NOT_DONE_YET

    def _not_authenticated(self, request: DaemonRequest, failure: Failure) -> bytes:
        """The authenticator refused (its status), did not answer in time (503), or failed (500, logged)."""
        client = request.clientAddress
        rejection = failure.value
        if isinstance(rejection, ConnectionRejected):
            self._log_refusal("authentication refused {client} on {path}: {status} {reason}", request, rejection)
            return refuse(request, rejection.status, rejection.headers, rejection.reason)
        if isinstance(rejection, TimeoutError):
            unavailable = ServiceUnavailable("authentication did not answer in time")
            self.log.warn(
                "authentication of {client} on {path}: no answer within {seconds} s",
                client=str(client),
                path=self.path,
                seconds=self.auth_timeout_seconds,
            )
            return refuse(request, unavailable.status, unavailable.headers, str(unavailable))
        self.log.failure(
            "authenticator {authenticator!r} failed for {client} on {path}",
            failure,
            authenticator=self.authenticator,
            client=str(client),
            path=self.path,
        )
        return refuse(request, 500, [], "internal error")

    def _log_refusal(self, log_format: str, request: DaemonRequest, rejection: ConnectionRejected) -> None:
        """One line saying who was refused and why: the rejection's ``why``, never a credential."""
        self.log.info(
            log_format,
            client=str(request.clientAddress),
            path=self.path,
            status=rejection.status,
            reason=rejection.why,
        )

    def _answer_bug(self, failure: Failure, request: DaemonRequest, wrapper: SwitchingProtocol) -> None:
        """A bug after an asynchronous authenticator answered (in a handler's factory, say): 500, logged.

        Nothing is written once the connection has switched to WebSocket or the client is gone.
        """
        self.log.failure("upgrade on {path} failed after authentication", failure, path=self.path)
        if wrapper.upgraded is None and not request.finished and request.channel is not None:
            self._finish(request, refuse(request, 500, [], "internal error"))

    def _finish(self, request: Request, answer: bytes | int) -> None:
        """Complete a request answered after ``render`` returned, counting a refusal."""
        if isinstance(answer, bytes):
            self.stats.refused(request.code)
        finish(request, answer)


def _timed_out(result: object, timeout: float) -> Failure:
    """The authenticator's answer once its time ran out, whatever it was: a timeout (fail closed)."""
    return Failure(TimeoutError(f"authentication did not answer within {timeout} s"))


def finish(request: Request, answer: bytes | int) -> None:
    """Complete a request answered after ``render`` returned: write a refusal's body; a 101 needs nothing more."""
    if isinstance(answer, bytes):
        request.setHeader("Content-Length", str(len(answer)))
        request.write(answer)
        request.finish()
