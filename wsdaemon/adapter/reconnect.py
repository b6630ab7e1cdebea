"""A client that stays connected: keepalive pings, and reconnects with backoff and full jitter.

:func:`~wsdaemon.adapter.client.connect` opens one WebSocket. A program that
must stay connected (a dashboard, a bot, the CLI with ``--reconnect``) needs
the same few rules every time, so they live here once:

* **Keepalive.** Each connection pings every ``limits.ping_interval_seconds``
  and fails with 1011 "keepalive timeout" when no pong comes within
  ``limits.pong_timeout_seconds``: a half-open link (a NAT that forgot us, a
  laptop lid) is noticed instead of hanging forever.
* **Reconnect** after an abnormal end (the TCP dropped, a close other than
  1000, a refused connection, a 5xx answer), never after a close the user
  asked for with :meth:`ReconnectingClient.close`, nor after the server's own
  1000, nor after an answer that will not change by retrying (a 404, a 403, an
  untrusted certificate).
* **Backoff** (:class:`Backoff`): exponential with full jitter, so that
  clients dropped together by a restart do not come back together; the first
  retry comes within about a second, later ones at most about 30 s apart, and
  a connection that stayed up ``stable_after_seconds`` resets the sequence.
* **Resumption** (:class:`Resumption`): the place where a protocol that can
  resume after a reconnect (the JSON envelope's recovery query) plugs in: it
  sees every message and chooses the URL of the next connection.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.python.failure import Failure

from wsdaemon.adapter.client import HandshakeFailed, TLSFailed, connect, parse_url
from wsdaemon.adapter.outcome import WebSocketClosed
from wsdaemon.core import CloseCode, Limits
from wsdaemon.interfaces import DaemonTransport, WebSocketTransport

#: The client's limits: the core's defaults, but no idle timeout worth the name (a client that
#: waits for rare messages must not hang up on its own; keepalive pings find dead links instead).
CLIENT_LIMITS = Limits(idle_timeout_seconds=7 * 86400.0)


@dataclass
class Backoff:
    """Exponential backoff with full jitter: the n-th delay is uniform in [0, min(cap, initial * 2**n)).

    Full jitter (rather than a fixed doubling) spreads the clients a restart
    dropped at the same moment over the whole window, so the server is not
    met by all of them at once.

    Args:
        initial_seconds: the first window; the first retry comes within it.
        cap_seconds: the largest window.
        random: a source of floats in [0, 1) (a test passes a fixed one).
    """

    initial_seconds: float = 1.0
    cap_seconds: float = 30.0
    random: Callable[[], float] = random.random
    attempts: int = 0

    def next_delay(self) -> float:
        """The delay before the next attempt, growing the window for the one after."""
        window = min(self.cap_seconds, self.initial_seconds * 2.0 ** min(self.attempts, 32))
        self.attempts += 1
        return float(self.random()) * window

    def reset(self) -> None:
        """Start again from the first window (the last connection was stable)."""
        self.attempts = 0


@dataclass(frozen=True)
class Ending:
    """How one connection, or one attempt at one, ended.

    Attributes:
        code: the close code (1006 when the TCP dropped without a close), or None
            when no WebSocket was opened.
        reason: the close reason, or what went wrong (one line).
        clean: whether a close handshake completed.
        requested: whether our user asked for this close (:meth:`ReconnectingClient.close`).
        retry: whether reconnecting may help.
        retry_after_seconds: the least wait the server asked for (``Retry-After``), if any.
        by_server: whether the server sent the close (rather than us failing the connection).
    """

    code: int | None
    reason: str
    clean: bool = False
    requested: bool = False
    retry: bool = True
    retry_after_seconds: float | None = None
    by_server: bool = True

    @property
    def normal(self) -> bool:
        """A 1000 close handshake: nothing went wrong."""
        return self.clean and self.code == CloseCode.NORMAL_CLOSURE

    def describe(self) -> str:
        """One line for a person: what happened, with the code and reason when there are any."""
        if self.code is None:
            return self.reason
        reason = f": {self.reason}" if self.reason else ""
        if self.code == CloseCode.ABNORMAL_CLOSURE:
            return "connection lost without a close frame (1006)"
        if self.clean:
            who = "the server closed" if self.by_server else "closed"
            return f"{who} the connection with {self.code}{reason}"
        return f"connection failed with {self.code}{reason}"


def ending_of_failure(failure: Failure) -> Ending:
    """The :class:`Ending` of an attempt that never opened a WebSocket (refused, DNS, TLS, a non-101)."""
    error = failure.value
    if isinstance(error, TLSFailed):
        return Ending(None, str(error), retry=False)
    if isinstance(error, HandshakeFailed):
        status = error.status
        permanent = status is not None and 400 <= status < 500 and status not in (408, 429)
        return Ending(
            None, f"upgrade refused: {error}", retry=not permanent, retry_after_seconds=error.retry_after_seconds
        )
    return Ending(None, f"cannot connect: {failure.getErrorMessage().rstrip('.')}")


def ending_of_close(reason: Failure, requested: bool) -> Ending:
    """The :class:`Ending` of an open WebSocket, from the failure the wire protocol reports."""
    error = reason.value
    code = int(getattr(error, "code", CloseCode.ABNORMAL_CLOSURE))
    text = str(getattr(error, "reason", ""))
    clean = isinstance(error, WebSocketClosed)
    normal = clean and code == CloseCode.NORMAL_CLOSURE
    return Ending(code, text, clean=clean, requested=requested, retry=not normal and not requested, by_server=clean)


class SessionHandler(Protocol):
    """What a :class:`ReconnectingClient` tells its user; every method is optional in spirit, required in type."""

    def opened(self, transport: DaemonTransport) -> None:
        """A connection is open (the first, or one after a reconnect); send through ``transport``."""

    def textMessageReceived(self, message: str) -> None:
        """A text message arrived."""

    def bytesMessageReceived(self, data: bytes) -> None:
        """A binary message arrived."""

    def ended(self, ending: Ending) -> None:
        """A connection (or an attempt at one) ended."""

    def reconnecting(self, delay_seconds: float, ending: Ending) -> None:
        """The next attempt comes in ``delay_seconds``, because of ``ending``."""


class ResumeFailed(ValueError):
    """A message broke the resumption's protocol (not an envelope, out of sequence).

    The client fails that connection with 1002 and, as after any abnormal
    end, reconnects from the last good position.
    """


class Resumption(Protocol):
    """How a protocol that can resume plugs into reconnecting (the JSON envelope's recovery).

    Implementations remember the position of the last message seen and ask
    for what followed it when they connect again; a plain endpoint needs none
    (:class:`NoResumption`).
    """

    def url(self, base_url: str) -> str:
        """The URL of the next connection, e.g. ``base_url`` with ``?since=OFFSET&epoch=EPOCH``."""

    def received(self, message: str | bytes) -> str | bytes | None:
        """Look at one message; return what the user gets (None: nothing, e.g. a duplicate or a notice).

        Raises:
            ResumeFailed: the message breaks the protocol.
        """


class NoResumption:
    """Every connection to the same URL; every message passed on as it came."""

    def url(self, base_url: str) -> str:
        """The URL unchanged."""
        return base_url

    def received(self, message: str | bytes) -> str | bytes | None:
        """The message unchanged."""
        return message


@dataclass(frozen=True)
class ConnectOptions:
    """How each connection is made: the arguments of :func:`~wsdaemon.adapter.client.connect`.

    ``keepalive`` is on by default here, where it is off for a bare ``connect``.
    """

    limits: Limits = CLIENT_LIMITS
    subprotocols: tuple[str, ...] = ()
    origin: str | None = None
    cafile: str | None = None
    deflate: bool = True
    keepalive: bool = True
    headers: tuple[tuple[str, str], ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. endpoint_factory, for tests


class _Connection:
    """The handler of one wire connection: forwards to the session, tells it how it ended."""

    def __init__(self, session: ReconnectingClient) -> None:
        self.session = session

    def negotiationStarted(self, transport: WebSocketTransport) -> None:
        """Remember the transport; nothing may be sent before the 101 is checked."""
        self.transport = cast(DaemonTransport, transport)  # the wire protocol, which has the extensions

    def negotiationFinished(self) -> None:
        """The WebSocket is open."""
        self.session._opened(self.transport)

    def textMessageReceived(self, message: str) -> None:
        """Through the resumption, then to the user."""
        self.session._received(message)

    def bytesMessageReceived(self, data: bytes) -> None:
        """Through the resumption, then to the user."""
        self.session._received(data)

    def pongReceived(self, payload: bytes) -> None:
        """Keepalive pongs are taken by the wire protocol; others are of no interest here."""

    def connectionLost(self, reason: Failure) -> None:
        """Tell the session, which decides whether to reconnect."""
        self.session._lost(reason)


class ReconnectingClient:
    """Keeps a WebSocket to one URL open until told to close; see the module docstring.

    Use it from any Twisted program::

        client = ReconnectingClient(reactor, "wss://example.com/feed", handler)
        ending = await client.start()   # fires once it stops for good

    Args:
        reactor: the reactor (its clock times backoff and keepalive).
        url: ``ws://`` or ``wss://`` URL.
        handler: told of each opening, message, end and planned reconnect.
        options: how each connection is made (limits, TLS trust, deflate...).
        reconnect: whether to reconnect at all; without it this is one
            connection with keepalive and the same reporting.
        backoff: the delay policy (a fresh default :class:`Backoff` if None).
        stable_after_seconds: a connection open this long resets the backoff.
        resumption: what to resume after a reconnect (:class:`NoResumption` if None).

    Raises:
        ValueError: ``url`` is not a WebSocket URL (raised here, not later).
    """

    def __init__(
        self,
        reactor: IReactorTime,
        url: str,
        handler: SessionHandler,
        *,
        options: ConnectOptions | None = None,
        reconnect: bool = True,
        backoff: Backoff | None = None,
        stable_after_seconds: float = 10.0,
        resumption: Resumption | None = None,
    ) -> None:
        parse_url(url)
        self.reactor = reactor
        self.url = url
        self.handler = handler
        self.options = options or ConnectOptions()
        self.reconnect = reconnect
        self.backoff = backoff or Backoff()
        self.stable_after_seconds = stable_after_seconds
        self.resumption: Resumption = resumption or NoResumption()
        #: Fires with the last :class:`Ending` once the client stops for good.
        self.finished: Deferred[Ending] = Deferred()
        #: The open connection's transport, None between connections.
        self.transport: DaemonTransport | None = None
        self.attempts = 0
        self._closing = False
        self._retry: IDelayedCall | None = None
        self._opened_at = 0.0

    def start(self) -> Deferred[Ending]:
        """Make the first attempt; returns :attr:`finished`."""
        self._attempt()
        return self.finished

    def close(self, code: int = CloseCode.NORMAL_CLOSURE, reason: str = "") -> None:
        """Close on purpose: no reconnect follows; :attr:`finished` fires once the close is done."""
        self._closing = True
        if self.transport is not None:
            self.transport.loseConnection(code, reason)
        elif self._retry is not None:
            self._retry.cancel()
            self._retry = None
            self._finish(Ending(None, "closed while waiting to reconnect", requested=True, retry=False))
        # else an attempt is under way: _opened closes it, or its failure finishes.

    # --- called by each connection's _Connection ----------------------------------

    def _attempt(self) -> None:
        self._retry = None
        self.attempts += 1
        options = self.options
        connecting = connect(
            self.reactor,
            self.resumption.url(self.url),
            _Connection(self),
            limits=options.limits,
            subprotocols=options.subprotocols,
            origin=options.origin,
            cafile=options.cafile,
            deflate=options.deflate,
            keepalive=options.keepalive,
            headers=options.headers,
            **options.extra,
        )
        connecting.addErrback(lambda failure: self._after(ending_of_failure(failure)))

    def _opened(self, transport: DaemonTransport) -> None:
        self.transport = transport
        self._opened_at = self.reactor.seconds()
        if self._closing:
            transport.loseConnection(CloseCode.NORMAL_CLOSURE, "")
            return
        self.handler.opened(transport)

    def _received(self, message: str | bytes) -> None:
        try:
            passed = self.resumption.received(message)
        except ResumeFailed as error:
            if self.transport is not None:
                self.transport.loseConnection(CloseCode.PROTOCOL_ERROR, str(error))
            return
        if isinstance(passed, str):
            self.handler.textMessageReceived(passed)
        elif passed is not None:
            self.handler.bytesMessageReceived(passed)

    def _lost(self, reason: Failure) -> None:
        self.transport = None
        if self.reactor.seconds() - self._opened_at >= self.stable_after_seconds:
            self.backoff.reset()
        self._after(ending_of_close(reason, requested=self._closing))

    def _after(self, ending: Ending) -> None:
        """Report ``ending``, then reconnect after a backoff delay or stop."""
        self.handler.ended(ending)
        if self._closing or not self.reconnect or not ending.retry:
            self._finish(ending)
            return
        delay = self.backoff.next_delay()
        if ending.retry_after_seconds is not None:
            delay = max(delay, ending.retry_after_seconds)
        self.handler.reconnecting(delay, ending)
        self._retry = self.reactor.callLater(delay, self._attempt)

    def _finish(self, ending: Ending) -> None:
        if not self.finished.called:
            self.finished.callback(ending)
