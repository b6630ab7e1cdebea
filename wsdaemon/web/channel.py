"""The HTTP/1.1 channel of every connection: twisted.web's ``HTTPChannel`` with limits that answer.

twisted.web's channel enforces the head limits in three places, and one of them
hangs up without a word: a single line longer than ``LineReceiver.MAX_LENGTH``
(16 KiB, whatever ``totalHeadersSize`` says) goes to ``lineLengthExceeded``, which
just closes the connection. It also reads every request body in full, however
large, before the resource can refuse it. :class:`DaemonChannel` closes both gaps
with public API only:

* ``MAX_LENGTH`` (the line limit) is ``http_max_header_bytes``, so no line can pass
  the line check and fail the whole-head check, and ``lineLengthExceeded`` answers:
  ``414`` for the request line, ``431`` for a header line (RFC 6585 §5). A head whose
  lines add up to more than the limit gets ``431`` too.
* A body over ``http_max_body_bytes`` gets ``413`` (RFC 9110 §15.5.14) as soon as
  that is known: from ``Content-Length`` when the head ends (before any
  ``100 Continue``), or from the running count of a chunked body.

After such an answer the connection reads nothing more, half-closes (plain TCP:
the client sees the end of the response at once), and is dropped
``close_timeout_seconds`` later. Closing at once while the client is still sending
would make the kernel answer with a reset that can destroy the response before the
client reads it (RFC 9112 §9.6); not reading bounds what the client can make us do.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from twisted.internet.interfaces import IDelayedCall, IReactorTime, ISSLTransport, ITCPTransport
from twisted.internet.protocol import connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.http import HTTPChannel

from wsdaemon.adapter.switching import SwitchingProtocol
from wsdaemon.core import Limits

if TYPE_CHECKING:
    from twisted.web.http import Request


class RequestRefused(Exception):
    """A request the channel answers itself, before any resource sees it; ``status`` is the answer."""

    status: ClassVar[int] = 400
    phrase: ClassVar[str] = "Bad Request"


class RequestLineTooLong(RequestRefused):
    """The request line alone is longer than ``http_max_header_bytes`` (RFC 9112 §3)."""

    status = 414
    phrase = "URI Too Long"


class HeadTooLarge(RequestRefused):
    """A header line, or the head as a whole, is longer than ``http_max_header_bytes`` (RFC 6585 §5)."""

    status = 431
    phrase = "Request Header Fields Too Large"


class BodyTooLarge(RequestRefused):
    """The body is, or is declared to be, larger than ``http_max_body_bytes`` (RFC 9110 §15.5.14)."""

    status = 413
    phrase = "Content Too Large"


def refusal_response(error: RequestRefused) -> bytes:
    """The whole response for ``error``: status line, a few headers and a one-line plain-text reason."""
    body = f"{error}\n".encode()
    head = (
        f"HTTP/1.1 {error.status} {error.phrase}\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Cache-Control: no-store\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


#: Until :meth:`DaemonChannel.configure`: built once (a Limits is immutable; making one costs ~2 µs a connection).
_DEFAULT_LIMITS = Limits()


class DaemonChannel(HTTPChannel):
    """An ``HTTPChannel`` whose head and body limits answer with a status instead of hanging up."""

    log = Logger()

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # super(): mypy#16653
        self.limits = _DEFAULT_LIMITS
        self.reactor: IReactorTime | None = None
        self.head_bytes = 0  # of the request head being read (Twisted's own count is private)
        self.refused: RequestRefused | None = None
        self._hang_up: IDelayedCall | None = None

    def configure(self, limits: Limits, reactor: IReactorTime) -> None:
        """Take the listener's limits (set by the site right after it builds the channel)."""
        self.limits = limits
        self.reactor = reactor
        self.maxHeaders = limits.http_max_headers
        self.totalHeadersSize = limits.http_max_header_bytes
        self.MAX_LENGTH = limits.http_max_header_bytes

    def dataReceived(self, data: bytes) -> None:
        """Nothing more is read once a request was refused (what already arrived is dropped)."""
        if self.refused is None:
            super().dataReceived(data)  # type: ignore[no-untyped-call]  # super(): mypy#16653

    def lineReceived(self, line: bytes) -> None:
        """Count the head's bytes; over ``http_max_header_bytes`` the request gets 431."""
        if self.refused is not None:
            return
        self.head_bytes += len(line)
        if self.head_bytes > self.totalHeadersSize:
            self.refuse(HeadTooLarge(f"request head over http_max_header_bytes ({self.totalHeadersSize} bytes)"))
            return
        super().lineReceived(line)  # type: ignore[no-untyped-call]  # super(): mypy#16653

    def lineLengthExceeded(self, line: bytes) -> None:
        """One line over the limit: 414 if it is the request line, 431 if a header line."""
        limit = f"http_max_header_bytes ({self.MAX_LENGTH} bytes)"
        if self.head_bytes == 0:
            self.refuse(RequestLineTooLong(f"request line over {limit}"))
        else:
            self.refuse(HeadTooLarge(f"header line over {limit}"))

    def allHeadersReceived(self) -> None:
        """A declared ``Content-Length`` over ``http_max_body_bytes`` gets 413 before the body is read."""
        if self.length is not None and self.length > self.limits.http_max_body_bytes:
            self.refuse(BodyTooLarge(self._body_limit_text()))
            return
        super().allHeadersReceived()  # type: ignore[no-untyped-call]  # super(): mypy#16653

    def body_received(self, size: int, so_far: int) -> bool:
        """Whether a request may take ``size`` more body bytes after ``so_far`` (chunked bodies are counted here).

        Called by the request for each piece of its body; over the limit the request gets 413.
        """
        if self.refused is not None:
            return False
        if so_far + size > self.limits.http_max_body_bytes:
            self.refuse(BodyTooLarge(self._body_limit_text()))
            return False
        return True

    def rawDataReceived(self, data: bytes) -> None:
        """Body bytes (or pipelined requests) are passed on only while nothing was refused."""
        if self.refused is None:
            super().rawDataReceived(data)

    def allContentReceived(self) -> None:
        """A complete request is served, unless it was refused on the way (a chunked body's last piece)."""
        if self.refused is not None:
            return
        self.head_bytes = 0
        super().allContentReceived()  # type: ignore[no-untyped-call]  # super(): mypy#16653

    def refuse(self, error: RequestRefused) -> None:
        """Answer ``error`` now, read nothing more, half-close, and drop the connection a little later."""
        if self.refused is not None:
            return
        self.refused = error
        self.clearLineBuffer()  # type: ignore[no-untyped-call]
        transport: Any = self.transport
        self.log.info(
            "refused a request from {peer}: {status} {reason}",
            peer=getattr(transport.getPeer(), "host", "?"),
            status=error.status,
            reason=str(error),
        )
        if isinstance(transport, SwitchingProtocol):
            transport.requestStarted()  # the hang-up below replaces the handshake clock
        transport.unregisterProducer()
        transport.write(refusal_response(error))
        transport.pauseProducing()
        if ITCPTransport.providedBy(transport) and not ISSLTransport.providedBy(transport):
            transport.loseWriteConnection()  # TLS has no half-close: its close_notify comes with the close
        if self.reactor is None:
            transport.loseConnection()
        else:
            self._hang_up = self.reactor.callLater(self.limits.close_timeout_seconds, self._drop)

    def switched(self, request: Request) -> None:
        """The connection went over to WebSocket while ``request`` was served: let the request go.

        A channel and the requests it serves refer to each other (``requests`` and
        ``request.channel``), and an upgrade's request never finishes, so every
        upgraded connection left that pair, and through it the whole connection once
        closed, to the cyclic garbage collector: under a handshake load a tenth of the
        daemon's CPU went to collections. Without the channel's reference both are
        freed as soon as nothing else holds the request.
        """
        if request in self.requests:
            self.requests.remove(request)

    def _drop(self) -> None:
        self._hang_up = None
        self.transport.loseConnection()  # type: ignore[union-attr]  # connected until connectionLost

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        """The client went away (or we dropped it): no pending hang-up."""
        if self._hang_up is not None and self._hang_up.active():
            self._hang_up.cancel()
        self._hang_up = None
        super().connectionLost(reason)  # type: ignore[no-untyped-call]  # super(): mypy#16653

    def _body_limit_text(self) -> str:
        return f"request body over http_max_body_bytes ({self.limits.http_max_body_bytes} bytes)"
