"""The thin Twisted adapter: drives a core :class:`Connection` from a transport.

It does nothing but feed bytes in, write what the core queues, keep time and
call the handler. It never builds a frame or picks a close code on its own:
those come from the core (DESIGN §2.2, seam 1). When it closes for a reason
only it can see (idle or keepalive timeout, a peer that stopped reading, a
handler that raised), it tells the core which reason, and the core's table
(``wsdaemon.core.errors``) gives the code.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IPushProducer, IReactorTime
from twisted.internet.protocol import Protocol
from twisted.internet.tcp import Connection as TCPConnection
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from wsdaemon.adapter.deadlines import Deadline, Ticker
from wsdaemon.adapter.heartbeat import Due, Heartbeat
from wsdaemon.adapter.immediate import immediate_socket, joined_for_send, send_now
from wsdaemon.adapter.outcome import PeerInfo, WebSocketClosed, WebSocketLost, log_closed
from wsdaemon.adapter.transport import IStreamTransport, tcp_transport
from wsdaemon.adapter.turn import TurnWriter
from wsdaemon.core import (
    EOF,
    BytesMessage,
    CloseCode,
    Connection,
    ConnectionFailed,
    Limits,
    PolicyViolation,
    Pong,
    State,
    TextMessage,
)
from wsdaemon.core.errors import IDLE_TIMEOUT, InternalError, KeepaliveTimeout, LocalClose, SlowConsumer
from wsdaemon.core.frames import SharedMessage
from wsdaemon.interfaces import ClientAddress, Identity, WebSocketProtocol
from wsdaemon.stats import EndpointStats

#: The per-connection summary's logger: a plain Logger with the class's namespace, since
#: ``self.log`` (a descriptor) builds a new Logger on every access.
_SUMMARY_LOG = Logger(namespace="wsdaemon.adapter.protocol.WebSocketWireProtocol")


class _Departed:
    """Who ``handler`` is once the connection is gone: a handler that does nothing.

    A handler usually keeps its transport (the wire protocol), so keeping the handler
    after the end too would make every closed connection a reference cycle, freed only
    by the cyclic garbage collector: under a handshake load, with the channel's cycle
    (``DaemonChannel.switched``), a tenth of the daemon's CPU.
    """

    def negotiationStarted(self, transport: object) -> None:
        """Never called: the connection is over."""

    def negotiationFinished(self) -> None:
        """Never called: the connection is over."""

    def pongReceived(self, payload: bytes) -> None:
        """Nothing is read after the end."""

    def textMessageReceived(self, message: str) -> None:
        """Nothing is read after the end."""

    def bytesMessageReceived(self, data: bytes) -> None:
        """Nothing is read after the end."""

    def connectionLost(self, reason: Failure) -> None:
        """Told once already, to the real handler."""


_DEPARTED = _Departed()

#: The states, looked up once: an Enum member read off its class costs a descriptor call on CPython 3.11.
_OPEN, _CLOSED = State.OPEN, State.CLOSED


@implementer(IPushProducer)
class WebSocketWireProtocol(PeerInfo, Protocol):
    """One WebSocket connection on the reactor, speaking to one handler.

    It is also the ``WebSocketTransport`` the handler sends through (the peer's address comes from
    :class:`PeerInfo`), and the push producer the TCP transport pauses when the peer stops reading.
    """

    log = Logger()
    transport: IStreamTransport | None
    _socket: TCPConnection | None = None  # from connectionMade: where send_now may write (None: transport.write)

    def __init__(
        self,
        handler: WebSocketProtocol,
        connection: Connection,
        reactor: IReactorTime,
        *,
        path: str = "",
        subprotocol: str | None = None,
        keepalive: bool = False,
        ticker: Ticker | None = None,
        client: ClientAddress | None = None,
        identity: Identity | None = None,
        expires_at: float | None = None,
        stats: EndpointStats | None = None,
        turn: TurnWriter | None = None,
    ) -> None:
        self.handler = handler
        self._turn = turn  # the endpoint's: gathers the writes made outside a read (broadcasts, timers)
        self.stats = stats  # the endpoint's: reads this connection's counters at scrape time
        self._client = client
        self.identity = identity
        self.connection = connection
        self.limits: Limits = connection.limits
        self.path = path
        self.subprotocol = subprotocol
        self._reactor = reactor
        self._close_deadline = Deadline(reactor)
        self._dispatching = False
        self._paused = False
        self._queued_while_paused = 0
        self._producer: IPushProducer | None = None
        self._receiving_paused = False  # the handler asked us to stop reading (pauseReceiving)
        self._started = 0.0
        self.bytes_in = self.bytes_out = self.messages_in = self.messages_out = 0
        self._ticker = ticker if ticker is not None else Ticker(reactor)  # idle, keepalive: one timer for all
        self.keepalive = keepalive  # the server pings; the client only answers
        self._expires_at = expires_at  # close_on_expiry: when the identity runs out (POSIX seconds)
        self._heartbeat = Heartbeat(connection.limits, keepalive, 0.0)

    # --- IProtocol ---------------------------------------------------------

    def connectionMade(self) -> None:
        """Register for backpressure, arm the idle check and tell the handler."""
        transport = self.transport
        assert transport is not None
        socket = tcp_transport(transport)  # under TLS, the TCP connection the TLS wrapper writes to
        if getattr(socket, "bufferSize", None) is not None:
            socket.bufferSize = self.limits.write_buffer_high_bytes  # type: ignore[attr-defined]
        if getattr(socket, "SEND_LIMIT", None) is not None:  # twisted.internet.tcp: writeSomeData's cap
            socket.SEND_LIMIT = self.limits.send_chunk_bytes  # type: ignore[attr-defined]
        transport.registerProducer(self, True)
        self._socket = immediate_socket(transport)
        self._started = now = self._reactor.seconds()
        self._heartbeat = Heartbeat(self.limits, self.keepalive, now, self._expires_at)
        self._ticker.add(self)
        if self.stats is not None:
            self.stats.opened(self)
        self._call_handler("negotiationStarted", self)
        self._flush()

    def finishNegotiation(self) -> None:
        """The 101 is on the wire: let the handler start sending."""
        self._call_handler("negotiationFinished")
        if self._receiving_paused and self.transport is not None:
            self.transport.pauseProducing()  # the switch to WebSocket resumed reading
        self._flush()

    def dataReceived(self, data: bytes) -> None:
        """Feed the core, run the handler on each event in order, write the answers once."""
        self.bytes_in += len(data)
        self.connection.receive_data(data)
        self._dispatch()
        self._flush(immediate=True)

    def connectionLost(self, reason: Failure = Failure(ConnectionDone())) -> None:
        """Report the close code to the handler and stop every timer."""
        connection = self.connection
        connection.receive_eof()
        self._close_deadline.cancel()
        self._ticker.discard(self)
        code = connection.close_code or CloseCode.ABNORMAL_CLOSURE
        clean = not connection.failed and code != CloseCode.ABNORMAL_CLOSURE
        error = WebSocketClosed if clean else WebSocketLost
        self._log_summary(code, connection.close_reason)
        if self.stats is not None:
            self.stats.closed(self, code)
        self._call_handler("connectionLost", Failure(error(code, connection.close_reason)))
        self.handler, self._producer = _DEPARTED, None  # no cycle left: freed now, not by a collection

    # --- WebSocketTransport (the handler's API) -----------------------------

    def sendTextMessage(self, text: str) -> None:
        """Send a text message; dropped (with a debug log) once closing has begun."""
        self._send(self.connection.send_text, text, "text")

    def sendBytesMessage(self, data: bytes) -> None:
        """Send a binary message; dropped (with a debug log) once closing has begun."""
        self._send(self.connection.send_binary, data, "bytes")

    def ping(self, payload: bytes = b"") -> None:
        """Send a Ping (at most 125 bytes); the Pong arrives as ``pongReceived``."""
        if self.connection.state is _OPEN:
            self.connection.send_ping(payload)
            self._flush()

    def loseConnection(self, code: int = CloseCode.NORMAL_CLOSURE, reason: str = "") -> None:
        """Start the closing handshake; calling it again while closing does nothing."""
        if self.connection.state is _OPEN:
            self.connection.send_close(code, reason)
            self._closing_started()

    def close_for(self, why: LocalClose) -> None:
        """Start the closing handshake for a named reason of the core's (``IDLE_TIMEOUT``, ``SHUTDOWN``); once."""
        if self.connection.state is _OPEN:
            self.connection.close_for(why)
            self._closing_started()

    def sendSharedMessage(self, message: SharedMessage) -> None:
        """Send a message framed once for many connections (a broadcast); dropped once closing has begun.

        A wsdaemon extension. The core queues it in order, and encodes it itself where the
        shared frames are not valid (permessage-deflate): either way the peer gets the same message.
        """
        self._send(self.connection.send_shared, message, "shared")

    def attachProducer(self, producer: IPushProducer) -> None:
        """Pause ``producer`` whenever the peer is not keeping up with what we send."""
        self._producer = producer
        if self._paused:
            producer.pauseProducing()

    def detachProducer(self) -> None:
        """Stop pausing the attached producer."""
        self._producer = None

    def pauseReceiving(self) -> None:
        """Stop reading from the peer until :meth:`resumeReceiving` (a wsdaemon extension).

        For handlers whose own sink is full (a pipe, a backend): the peer's TCP window closes
        instead of messages piling up in memory. Messages already read are still delivered.
        """
        self._receiving_paused = True
        if self.transport is not None:
            self.transport.pauseProducing()

    def resumeReceiving(self) -> None:
        """Read from the peer again, unless the peer itself is behind on what we send."""
        self._receiving_paused = False
        if not self._paused and self.transport is not None and self.connection.state is not _CLOSED:
            self.transport.resumeProducing()

    # --- IPushProducer: the transport tells us the peer is slow -------------

    def pauseProducing(self) -> None:
        """The write buffer is over ``write_buffer_high_bytes``: stop reading, pause the handler."""
        self._paused = True
        self._queued_while_paused = 0
        self.transport.pauseProducing()  # type: ignore[union-attr]
        if self._producer is not None:
            self._producer.pauseProducing()

    def resumeProducing(self) -> None:
        """The write buffer drained: read again, resume the handler."""
        self._paused = False
        if self.connection.state is not _CLOSED and not self._receiving_paused:
            self.transport.resumeProducing()  # type: ignore[union-attr]
        if self._producer is not None:
            self._producer.resumeProducing()

    def stopProducing(self) -> None:
        """The transport is going away; ``connectionLost`` follows."""
        if self._producer is not None:
            self._producer.stopProducing()
            self._producer = None

    # --- internals -------------------------------------------------------------

    def _send(self, send: Callable[[Any], None], message: str | bytes | SharedMessage, kind: str) -> None:
        """Queue a message with the core's ``send``; nothing goes out after our Close (RFC 6455 §5.5.1).

        Inside dispatch one write at the end of the read covers every answer; outside
        it (a broadcast, a timer) the endpoint's turn writer writes at the end of the turn.
        """
        if self.connection.state is not _OPEN:
            self.log.debug(
                "{kind} message dropped: connection is {state}", kind=kind, state=self.connection.state.value
            )
            return
        self.messages_out += 1
        send(message)
        if self._dispatching:
            return  # written with the read's answers
        size = len(message.payload) if isinstance(message, SharedMessage) else len(message)
        if self._turn is None or self._paused or not self._turn.add(self, size):  # else: at the end of the turn
            self._flush()

    def flush_now(self) -> None:
        """The :class:`TurnWriter`'s call at the end of a turn: send what was queued since, at once."""
        if self.transport is not None:
            self._flush(immediate=True)

    def _dispatch(self) -> None:
        """Hand each event to the handler; a handler exception fails only this connection."""
        handler = self.handler
        next_event = self.connection.next_event
        self._dispatching = True
        try:
            while (event := next_event()) is not None:
                if type(event) is TextMessage:
                    self.messages_in += 1
                    handler.textMessageReceived(event.data)
                elif type(event) is BytesMessage:
                    self.messages_in += 1
                    handler.bytesMessageReceived(event.data)
                elif type(event) is Pong:
                    if not self._heartbeat.answered(event.payload, self._reactor.seconds()):
                        handler.pongReceived(event.payload)
                    elif self.stats is not None:
                        self.stats.ping_rtt.observe(self._heartbeat.rtt)
                elif type(event) is ConnectionFailed:
                    self.log.info(
                        "failing WebSocket connection from {peer}: {code} {reason}",
                        peer=str(self.clientAddress),
                        code=event.code,
                        reason=event.reason,
                    )
        except Exception:  # noqa: BLE001 - any handler bug closes only its connection, with 1011
            self.log.failure("handler {handler!r} raised; closing its connection with 1011", handler=handler)
            self.connection.fail_with(InternalError())
        finally:
            self._dispatching = False

    def _call_handler(self, name: str, *args: Any) -> None:
        """Call a handler method outside dispatch, with the same 1011 net (a missing method counts as raising)."""
        try:
            getattr(self.handler, name)(*args)
        except Exception:  # noqa: BLE001 - any handler bug closes only its connection, with 1011
            self.log.failure(
                "handler {handler!r} raised in {name}; closing its connection with 1011",
                handler=self.handler,
                name=name,
            )
            self.connection.fail_with(InternalError())

    def _flush(self, immediate: bool = False) -> None:
        """Write what the core queued (at once if ``immediate``: see adapter.immediate); close on EOF; arm the close timeout."""
        chunks = self.connection.data_to_send()
        if not chunks:
            return
        transport = self.transport
        assert transport is not None
        eof = chunks[-1] == EOF
        if eof:
            chunks.pop()
        socket = self._socket if immediate and not eof and not self._paused else None  # a closing Close waits: FIN
        data = joined_for_send(chunks) if socket is not None else None
        if socket is not None and data is not None:
            self.bytes_out += len(data)
            send_now(socket, data)
        elif len(chunks) == 1 and not self._paused:  # one frame, peer keeping up
            self.bytes_out += len(chunks[0])
            transport.write(chunks[0])
        elif chunks:
            self._write(chunks)
        if eof:
            # Done producing: a TLS transport only starts its close once no producer is registered.
            transport.unregisterProducer()
            transport.loseConnection()
        if self.connection.close_expected() and not self._close_deadline.is_set():
            self._close_deadline.set(self.limits.close_timeout_seconds, self._close_timed_out)

    def _closing_started(self) -> None:
        """Write our Close; while the handler paused reading, read again to get the peer's answer."""
        self._flush()
        if self._receiving_paused:
            self.resumeReceiving()  # the peer's Close must be read to finish the handshake

    def _write(self, chunks: list[bytes]) -> None:
        """Write frames; bytes written while the peer is already behind count towards the cap."""
        size = sum(map(len, chunks))
        self.bytes_out += size
        already_paused = self._paused
        transport = self.transport
        assert transport is not None
        if len(chunks) == 1:
            transport.write(chunks[0])
        else:
            transport.writeSequence(chunks)
        if already_paused:
            self._note_queued(size)

    def _note_queued(self, size: int) -> None:
        """Fail a peer that lets more than ``write_buffer_max_bytes`` pile up unread (1008).

        Only bytes written while over ``write_buffer_high_bytes`` count: one large message never trips it.
        """
        self._queued_while_paused += size
        if self._queued_while_paused > self.limits.write_buffer_max_bytes and self.connection.state is not _CLOSED:
            self.connection.fail_with(SlowConsumer())
            self._flush()

    def _close_timed_out(self) -> None:
        """The peer never finished the close handshake (or never read it): drop TCP."""
        self.log.info("close timeout for {peer}; dropping the connection", peer=str(self.clientAddress))
        self.transport.abortConnection()  # type: ignore[union-attr]

    def tick(self, now: float) -> None:
        """The shared ticker's once-a-second look at the idle, keepalive and credential deadlines."""
        if self.connection.state is not _OPEN:
            return
        due = self._heartbeat.due(now, (self.messages_in, self.messages_out))
        if due is Due.CLOSE_IDLE:
            self.close_for(IDLE_TIMEOUT)
        elif due is Due.PING:
            self.connection.send_ping(self._heartbeat.next_ping(now))
            self._flush()
        elif due is Due.KEEPALIVE_TIMEOUT:
            self._keepalive_timed_out()
        elif due is Due.CREDENTIALS_EXPIRED:
            self._heartbeat.expires_at = None  # once: the close handshake is under way
            self.log.info("credentials of {peer} expired; closing with 1008", peer=str(self.clientAddress))
            self.connection.send_close(PolicyViolation.close_code, "credentials expired")
            self._flush()

    def _keepalive_timed_out(self) -> None:
        """No pong in time: the peer is gone (often a NAT that forgot us); fail with 1011 to free it."""
        peer, seconds = str(self.clientAddress), self.limits.pong_timeout_seconds
        self.log.info("keepalive timeout for {peer}: no pong within {seconds} s", peer=peer, seconds=seconds)
        self.connection.fail_with(KeepaliveTimeout())
        self._flush()

    def _log_summary(self, code: int, reason: str) -> None:
        """The one line per closed connection an operator greps for (DESIGN §4)."""
        duration = self._reactor.seconds() - self._started
        log_closed(_SUMMARY_LOG, self, peer=str(self.clientAddress), code=code, reason=reason, duration=duration)
