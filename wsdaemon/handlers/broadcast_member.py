"""One member of a ``broadcast`` channel: the handler of its connection, and the producer its transport pauses.

Rules for this file:

* A member joins its channel when the connection starts and leaves it (once)
  when the connection ends, is closed for not keeping up, or its transport
  stops it; nothing is sent to it after.
* What the member is given goes out at once, or into its own queue while its
  transport has paused it, in order. The queue is bounded in messages and
  bytes; the ``overflow`` policy decides what a full one does.
* A message the member's client sends is published to the channel through the
  daemon's broker, positioned (``history=``) on an endpoint that keeps history
  or sends envelopes, so it gets an offset like one published through the API.
"""

from __future__ import annotations

import typing
from collections import deque
from collections.abc import Callable

from twisted.internet.interfaces import IPushProducer
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from wsdaemon.broker import HistoryUnavailable, PublishRefused
from wsdaemon.core.frames import Opcode, SharedMessage
from wsdaemon.interfaces import WebSocketTransport

if typing.TYPE_CHECKING:
    from wsdaemon.handlers.broadcast import BroadcastFactory


@implementer(IPushProducer)
class BroadcastProtocol:
    """One member: the handler of its connection and the producer its transport pauses."""

    log = Logger()
    transport: WebSocketTransport
    _send: Callable[[SharedMessage], None]

    def __init__(self, factory: BroadcastFactory, channel: str) -> None:
        self.factory = factory
        self.settings = factory.settings
        self.channel_name = channel
        self.joined = False
        self.paused = False
        self.queue: deque[SharedMessage] = deque()
        self.queued_bytes = 0
        self.dropped = 0

    # --- WebSocketProtocol ----------------------------------------------------------

    def negotiationStarted(self, transport: WebSocketTransport) -> None:
        """Join the channel and let the transport pause this member when its peer is behind."""
        self.transport = transport
        self._send = getattr(transport, "sendSharedMessage", None) or self._send_plain
        self.factory.broker.subscribe(self.channel_name, self)
        self.joined = True
        transport.attachProducer(self)

    def negotiationFinished(self) -> None:
        """Nothing to send first: members get only what is published after they join."""

    def textMessageReceived(self, message: str) -> None:
        """Publish a text message to the channel."""
        self._publish(SharedMessage(Opcode.TEXT, message.encode("utf-8")))

    def bytesMessageReceived(self, data: bytes) -> None:
        """Publish a binary message to the channel."""
        self._publish(SharedMessage(Opcode.BINARY, bytes(data)))

    def pongReceived(self, payload: bytes) -> None:
        """Pongs are not published."""

    def connectionLost(self, reason: Failure) -> None:
        """Leave the channel and free the queue."""
        if self.dropped:
            self.log.info(
                "broadcast member on channel {channel!r} missed {dropped} messages (overflow = {policy})",
                channel=self.channel_name,
                dropped=self.dropped,
                policy=self.settings.overflow,
            )
        self._leave()

    # --- IPushProducer: the transport's backpressure signals -------------------------

    def pauseProducing(self) -> None:
        """The peer is behind: queue from now on."""
        self.paused = True

    def resumeProducing(self) -> None:
        """The peer caught up: send what was queued, in order, until paused again."""
        self.paused = False
        self._drain()

    def stopProducing(self) -> None:
        """The connection is going away."""
        self._leave()

    # --- delivery -------------------------------------------------------------------------

    def deliver(self, message: SharedMessage) -> None:
        """Send ``message`` (the broker's :class:`~wsdaemon.broker.Receiver` call)."""
        self.give(message)

    def give(self, message: SharedMessage) -> None:
        """Send ``message`` now, or queue it behind earlier ones while paused."""
        if not self.joined:
            return
        if not self.paused and not self.queue:
            self._send(message)
            return
        if self.settings.overflow == "latest":  # a ticker: only the newest value is worth sending
            while self.queue:
                self._drop_oldest()
        self.queue.append(message)
        self.queued_bytes += len(message.payload)
        if len(self.queue) > self.settings.queue_max_messages or self.queued_bytes > self.settings.queue_max_bytes:
            self._overflow()

    def _overflow(self) -> None:
        """Apply the endpoint's overflow policy to a full queue."""
        if self.settings.overflow == "close":
            self._close_slow_member()
            return
        while self.queue and (
            len(self.queue) > self.settings.queue_max_messages or self.queued_bytes > self.settings.queue_max_bytes
        ):
            self._drop_oldest()

    def _drop_oldest(self) -> None:
        """Forget the oldest queued message, counting it for the summary in :meth:`connectionLost` and for metrics."""
        self.queued_bytes -= len(self.queue.popleft().payload)
        self.dropped += 1
        self.factory.dropped[self.settings.overflow] += 1

    def _close_slow_member(self) -> None:
        """Close a member that fell too far behind; the channel goes on without it."""
        self.log.info(
            "broadcast member on channel {channel!r} is not keeping up ({messages} messages, {size} bytes queued); closing with {code}",
            channel=self.channel_name,
            messages=len(self.queue),
            size=self.queued_bytes,
            code=self.settings.overflow_close_code,
        )
        self.factory.dropped["close"] += len(self.queue)  # never delivered: the member is gone
        self.close(self.settings.overflow_close_code, "not keeping up with the channel")

    def close(self, code: int, reason: str) -> None:
        """Leave the channel, then close the connection with ``code`` and ``reason``."""
        self._leave()
        self.transport.loseConnection(code, reason)  # type: ignore[call-arg]

    def _drain(self) -> None:
        """Send queued messages in order until the queue is empty or the transport pauses us again."""
        while self.queue and not self.paused and self.joined:
            message = self.queue.popleft()
            self.queued_bytes -= len(message.payload)
            self._send(message)

    def _send_plain(self, message: SharedMessage) -> None:
        """For a transport without shared frames: encode per member."""
        if message.opcode == Opcode.TEXT:
            self.transport.sendTextMessage(message.payload.decode("utf-8"))
        else:
            self.transport.sendBytesMessage(message.payload)

    def _publish(self, message: SharedMessage) -> None:
        """Give a message this member sent to its channel, everywhere the broker reaches (nothing once it left)."""
        if self.joined:
            exclude = None if self.settings.deliver_to_sender else self
            history = self.settings.history
            self.factory.broker.publish(self.channel_name, message, exclude, history=history).addErrback(refused)

    def _leave(self) -> None:
        """Leave the channel (once) and free the queue: nothing is sent to this member after."""
        if self.joined:
            self.factory.broker.unsubscribe(self.channel_name, self)
            self.joined = False
        self.queue.clear()
        self.queued_bytes = 0


def refused(failure: Failure) -> None:
    """The broker refused a message (down with a full queue, or history unreadable); it logged that once."""
    failure.trap(PublishRefused, HistoryUnavailable)
