"""The ``broadcast`` handler: publish/subscribe channels.

Rules for this file:

* A connection joins one channel, named by the URL path it connected to: the
  endpoint's (``/chat``), or with ``channel_from_path`` the endpoint's path and
  what follows it (``/chat/room1``), so two endpoints never share a channel.
  With ``channels_claim``, it may join only a channel that claim of its verified
  identity allows (:mod:`wsdaemon.auth.channels`); anything else gets 403 before
  the 101.
* Channels live in the daemon's broker (:mod:`wsdaemon.broker`): in this
  process by default, or across workers and hosts (Redis). Every text or binary
  message a member sends goes to every member of its channel everywhere (the
  sender too, unless ``deliver_to_sender = false``), in the order the channel
  received them.
* A message is framed once (:class:`~wsdaemon.core.frames.SharedMessage`) and
  handed to every member's transport (``sendSharedMessage``); the protocol
  core writes those same bytes on every connection that can take them, and
  encodes the message for a connection that cannot (permessage-deflate). On a
  transport without ``sendSharedMessage`` (Twisted's own) each member sends it
  with ``sendTextMessage``/``sendBytesMessage``.
* A member whose peer is not reading is paused by its transport (the
  producer signals of ``attachProducer``). From then on its messages wait in
  its own queue, bounded in messages and bytes; when that is full the
  ``overflow`` policy decides: ``close`` the member (1008 or 1013),
  ``drop-oldest`` queued messages, or keep only the ``latest`` one. Nothing
  else waits for a slow member, and nothing about it grows without bound.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from twisted.internet.interfaces import IPushProducer
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.server import Request
from zope.interface import implementer

from wsdaemon.auth.channels import channel_allowed, claimed_channels
from wsdaemon.auth.errors import Forbidden
from wsdaemon.broker import IBroker, InProcessBroker, PublishRefused
from wsdaemon.broker.names import channel_problem
from wsdaemon.core.frames import Opcode, SharedMessage
from wsdaemon.handlers.options import OptionReader
from wsdaemon.interfaces import ConnectionRejected, HandlerContext, Identity, WebSocketTransport

OVERFLOW_POLICIES = ("close", "drop-oldest", "latest")
#: RFC 6455 §7.4.1: 1008 policy violation; 1013 try again later.
OVERFLOW_CLOSE_CODES = (1008, 1013)


@dataclass(frozen=True)
class BroadcastSettings:
    """An endpoint's validated ``broadcast`` options (see ``--list-handlers``)."""

    channel_from_path: bool = False
    deliver_to_sender: bool = True
    queue_max_messages: int = 1000
    queue_max_bytes: int = 1024 * 1024
    overflow: str = "close"
    overflow_close_code: int = 1008
    channels_claim: str | None = None  # the identity's claim listing the channel paths it may join


def read_settings(options: Mapping[str, Any]) -> BroadcastSettings:
    """Validate the options.

    Raises:
        HandlerOptionsError: an option has the wrong type or is out of range.
    """
    read = OptionReader(options, collect=True)
    defaults = BroadcastSettings()
    close_code = read.integer("overflow_close_code", defaults.overflow_close_code, 1008, 1013)
    if close_code not in OVERFLOW_CLOSE_CODES:
        read.report("overflow_close_code", "1008 (policy violation) or 1013 (try again later)", close_code)
    settings = BroadcastSettings(
        channel_from_path=read.boolean("channel_from_path", defaults.channel_from_path),
        deliver_to_sender=read.boolean("deliver_to_sender", defaults.deliver_to_sender),
        queue_max_messages=read.integer("queue_max_messages", defaults.queue_max_messages, 1, 1_000_000),
        queue_max_bytes=read.integer("queue_max_bytes", defaults.queue_max_bytes, 1024, 2**30),
        overflow=read.choice("overflow", defaults.overflow, OVERFLOW_POLICIES),
        overflow_close_code=close_code,
        channels_claim=read.string("channels_claim") if "channels_claim" in options else None,
    )
    read.check()
    return settings


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
        self._leave()
        self.transport.loseConnection(self.settings.overflow_close_code, "not keeping up with the channel")  # type: ignore[call-arg]

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
            self.factory.broker.publish(self.channel_name, message, exclude).addErrback(_refused)

    def _leave(self) -> None:
        """Leave the channel (once) and free the queue: nothing is sent to this member after."""
        if self.joined:
            self.factory.broker.unsubscribe(self.channel_name, self)
            self.joined = False
        self.queue.clear()
        self.queued_bytes = 0


def _refused(failure: Failure) -> None:
    """The broker refused a member's message (it is down with a full queue); it logged that once."""
    failure.trap(PublishRefused)


class BroadcastFactory:
    """Builds members of the endpoint's channels, which live in ``broker``.

    The daemon gives every endpoint its one broker (``HandlerContext.broker``); without
    one (a factory built alone, e.g. in tests) channels live in a broker of its own.
    """

    def __init__(self, settings: BroadcastSettings, endpoint: str, broker: IBroker | None = None) -> None:
        self.settings = settings
        self.endpoint = endpoint
        self.broker: IBroker = broker if broker is not None else InProcessBroker()
        #: Messages slow members never got, by overflow policy (read by ``/metrics`` at scrape time).
        self.dropped: Counter[str] = Counter()

    def buildProtocol(self, request: Request) -> BroadcastProtocol:
        """A member of the channel the request names.

        Raises:
            ConnectionRejected: 404 when the URL path names no valid channel; 403 when
                ``channels_claim`` is set and the identity's claim does not allow it.
        """
        channel = self.channel_for(request.postpath or [])
        if self.settings.channels_claim is not None:
            self.check_claim(getattr(request, "identity", None), channel, self.settings.channels_claim)
        return BroadcastProtocol(self, channel)

    def check_claim(self, identity: Identity | None, channel: str, claim: str) -> None:
        """Let in only an identity whose ``claim`` lists the channel (its path: exact, or ``/prefix/*``).

        Raises:
            Forbidden: 403, no identity or the claim does not allow this channel.
        """
        entries = claimed_channels(identity.claims, claim) if identity is not None else ()
        if not channel_allowed(channel, entries):
            who = "an anonymous client" if identity is None else f"{identity.name!r}"
            raise Forbidden(f"channel {channel} is not in the {claim!r} claim of {who}", "not allowed on this channel")

    def channel_for(self, rest: list[bytes]) -> str:
        """The channel a request joins: the URL path it names (``/chat``, or ``/chat/room1``).

        Raises:
            ConnectionRejected: 404 for a path this endpoint does not serve.
        """
        if not self.settings.channel_from_path:
            if any(rest):
                raise ConnectionRejected(404, f"no channel here; connect to {self.endpoint}")
            return self.endpoint
        if not rest:
            raise ConnectionRejected(404, f"name a channel after {self.endpoint}/")
        try:
            name = "/".join([self.endpoint.rstrip("/"), *(segment.decode("utf-8") for segment in rest)])
        except UnicodeDecodeError:
            raise ConnectionRejected(404, "a channel name is UTF-8 text") from None
        problem = channel_problem(name)
        if problem is not None:
            raise ConnectionRejected(404, f"name a channel after {self.endpoint}/: the channel name {problem}")
        return name

    def publish(self, channel: str, payload: str | bytes) -> None:
        """Publish from inside the daemon (another handler, a timer) to every member of ``channel``."""
        opcode = Opcode.TEXT if isinstance(payload, str) else Opcode.BINARY
        data = payload.encode("utf-8") if isinstance(payload, str) else payload
        self.broker.publish(channel, SharedMessage(opcode, data)).addErrback(_refused)


def build_factory(options: Mapping[str, Any], endpoint: str, context: HandlerContext | None = None) -> BroadcastFactory:
    """The ``broadcast`` handler's factory for one endpoint, its channels in ``context.broker``.

    Raises:
        HandlerOptionsError: an option has the wrong type or is out of range.
    """
    return BroadcastFactory(read_settings(options), endpoint, context.broker if context is not None else None)
