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
* An endpoint with ``history_size > 0`` or an ``envelope`` publishes
  *positioned* (every message gets the channel's next offset, and history keeps
  it). With ``envelope = "json"`` each member is an
  :class:`~wsdaemon.handlers.broadcast_envelope.EnvelopeMember`: its recovery
  query (``?since=&epoch=``) is judged before the 101 (a malformed one gets 400
  with the hub's reason), and it receives envelopes and notices only.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

from twisted.web.server import Request

from wsdaemon.adapter.deadlines import Ticker
from wsdaemon.auth.channels import channel_allowed, claimed_channels
from wsdaemon.auth.errors import Forbidden
from wsdaemon.broker import IBroker, InProcessBroker
from wsdaemon.broker.names import channel_problem
from wsdaemon.core.frames import Opcode, SharedMessage
from wsdaemon.handlers.broadcast_envelope import EnvelopeMember
from wsdaemon.handlers.broadcast_member import BroadcastProtocol, refused
from wsdaemon.handlers.broadcast_settings import (
    ENVELOPES,
    OVERFLOW_CLOSE_CODES,
    OVERFLOW_POLICIES,
    BroadcastSettings,
    read_settings,
)
from wsdaemon.hub import HubLimits, InvalidRecoveryQuery, Publication, RecoveryQuery, parse_recovery_query
from wsdaemon.interfaces import ConnectionRejected, HandlerContext, Identity

__all__ = [
    "ENVELOPES",
    "OVERFLOW_CLOSE_CODES",
    "OVERFLOW_POLICIES",
    "BroadcastFactory",
    "BroadcastProtocol",
    "BroadcastSettings",
    "EnvelopeMember",
    "build_factory",
    "read_settings",
]


class BroadcastFactory:
    """Builds members of the endpoint's channels, which live in ``broker``.

    The daemon gives every endpoint its one broker (``HandlerContext.broker``); without
    one (a factory built alone, e.g. in tests) channels live in a broker of its own.
    """

    def __init__(
        self, settings: BroadcastSettings, endpoint: str, broker: IBroker | None = None, reactor: Any = None
    ) -> None:
        self.settings = settings
        self.endpoint = endpoint
        self.broker: IBroker = broker if broker is not None else InProcessBroker(reactor)
        if settings.envelope is not None and reactor is None:
            raise ValueError(f"the envelope endpoint {endpoint} needs a reactor for its heartbeats")
        self.reactor = reactor
        self._ticker = Ticker(reactor) if reactor is not None else None
        self._framed: tuple[Publication | None, SharedMessage] = (None, SharedMessage(Opcode.TEXT, b""))
        #: Messages slow members never got, by overflow policy (read by ``/metrics`` at scrape time).
        self.dropped: Counter[str] = Counter()

    @property
    def history_limits(self) -> HubLimits | None:
        """The bounds a publish to this endpoint's channels is positioned with (None: not positioned)."""
        return self.settings.history

    def serves_channel(self, channel: str) -> bool:
        """Whether ``channel`` is one of this endpoint's (the publish API asks, to position its publish)."""
        if not self.settings.channel_from_path:
            return channel == self.endpoint
        return channel.startswith(self.endpoint.rstrip("/") + "/") and len(channel) > len(self.endpoint.rstrip("/")) + 1

    def frame(self, publication: Publication) -> SharedMessage:
        """The envelope of ``publication``, framed once for every member of this process it reaches.

        The broker hands one publication to each member in turn, so remembering
        the last one is enough for the live fan-out to share one frame.
        """
        last, framed = self._framed
        if last is not publication:
            framed = SharedMessage(Opcode.TEXT, publication.envelope())
            self._framed = (publication, framed)
        return framed

    def heartbeats(self) -> Ticker:
        """The once-a-second tick that sends ``heartbeat`` notices on quiet envelope connections."""
        if self._ticker is None:
            raise RuntimeError("an envelope endpoint's factory needs a reactor (HandlerContext.reactor)")
        return self._ticker

    def buildProtocol(self, request: Request) -> BroadcastProtocol:
        """A member of the channel the request names.

        Raises:
            ConnectionRejected: 404 when the URL path names no valid channel; 403 when
                ``channels_claim`` is set and the identity's claim does not allow it; 400 for a
                malformed recovery query on an envelope endpoint (docs/recovery.md's texts).
        """
        channel = self.channel_for(request.postpath or [])
        if self.settings.channels_claim is not None:
            self.check_claim(getattr(request, "identity", None), channel, self.settings.channels_claim)
        if self.settings.envelope is not None:
            return EnvelopeMember(self, channel, recovery_query(request))
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
        self.broker.publish(channel, SharedMessage(opcode, data), history=self.settings.history).addErrback(refused)


def build_factory(options: Mapping[str, Any], endpoint: str, context: HandlerContext | None = None) -> BroadcastFactory:
    """The ``broadcast`` handler's factory for one endpoint, its channels in ``context.broker``.

    Raises:
        HandlerOptionsError: an option has the wrong type or is out of range.
    """
    if context is None:
        return BroadcastFactory(read_settings(options), endpoint)
    return BroadcastFactory(read_settings(options), endpoint, context.broker, context.reactor)


def recovery_query(request: Request) -> RecoveryQuery | None:
    """The client's ``?since=OFFSET&epoch=EPOCH``, if any.

    Raises:
        ConnectionRejected: 400 with the hub's one-line reason (``since: negative``, ...).
    """
    try:
        return parse_recovery_query(request.uri.partition(b"?")[2])
    except InvalidRecoveryQuery as error:
        raise ConnectionRejected(400, str(error)) from None
