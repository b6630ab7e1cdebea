"""A member of an ``envelope = "json"`` endpoint: recovery on connect, positions on the wire (docs/recovery.md).

Rules for this file:

* The bookkeeping is the hub's :class:`~wsdaemon.hub.Subscription`; this
  member only does its I/O. It joins the channel *first*, as a
  :class:`~wsdaemon.broker.HistoryReceiver`, and then issues the
  subscription's first fetch with ``broker.history()``: so no message falls
  between the history read and the live stream.
* It runs the subscription's actions in order: a publication goes out as its
  cached envelope, framed once per process for every member
  (:meth:`BroadcastFactory.frame`); a notice is encoded on the spot; a fetch
  goes to ``broker.history()`` again. Everything goes through the member's one
  queue, so nothing overtakes anything.
* History that cannot be read (:class:`~wsdaemon.broker.HistoryUnavailable`,
  the broker is down) closes the connection with 1013 (try again later): the
  client reconnects with its position and loses nothing that history still
  has. Any other failure is a bug: logged, and closed with 1011.
* On a connection that sent nothing for the endpoint's
  ``ping_interval_seconds``, a ``heartbeat`` notice goes out (browsers cannot
  see pings), checked by the factory's once-a-second tick, not a timer each.
* A raw message the broker hands over without a position (published without
  ``history=``, which this endpoint never does) is not sent: a client of an
  envelope endpoint only ever sees envelopes. It is counted and logged.
"""

from __future__ import annotations

import typing

from twisted.python.failure import Failure

from wsdaemon.broker import HistoryUnavailable
from wsdaemon.core import Limits
from wsdaemon.core.frames import Opcode, SharedMessage
from wsdaemon.handlers.broadcast_member import BroadcastProtocol
from wsdaemon.hub import ChannelState, Fetch, Notice, Publication, RecoveryQuery, Subscription, encode_notice
from wsdaemon.interfaces import WebSocketTransport

if typing.TYPE_CHECKING:
    from wsdaemon.handlers.broadcast import BroadcastFactory
    from wsdaemon.hub import Action

#: RFC 6455 §7.4.1: try again later (history cannot be read now); an unexpected condition (a bug).
TRY_AGAIN_LATER, INTERNAL_ERROR = 1013, 1011


class EnvelopeMember(BroadcastProtocol):
    """A member that gets each message with its position, and resumes from the client's.

    Args:
        factory: the endpoint's factory (its broker, settings, frame cache and tick).
        channel: the channel joined.
        query: the client's ``?since=&epoch=`` (None: a plain subscription).
    """

    def __init__(self, factory: BroadcastFactory, channel: str, query: RecoveryQuery | None) -> None:
        super().__init__(factory, channel)
        self.subscription = Subscription(channel, query, factory.settings.hub)
        self.given = 0  # messages and notices handed to the transport or the queue
        self.unpositioned = 0  # raw messages not sent (see the rules above)
        self._quiet_seen = -1
        self._quiet_since = 0.0
        self._heartbeat_seconds = Limits().ping_interval_seconds

    def negotiationStarted(self, transport: WebSocketTransport) -> None:
        """Join the channel, then read the history the client needs (the fetch follows the join)."""
        super().negotiationStarted(transport)
        limits = getattr(transport, "limits", None)  # wsdaemon's transport: the endpoint's limits
        if isinstance(limits, Limits):
            self._heartbeat_seconds = limits.ping_interval_seconds
        self.factory.heartbeats().add(self)
        self._fetch(self.subscription.start())

    def connectionLost(self, reason: Failure) -> None:
        """Leave; say how many raw messages were held back, if any."""
        if self.unpositioned:
            self.log.warn(
                "envelope member on channel {channel!r}: {count} messages without a position were not sent",
                channel=self.channel_name,
                count=self.unpositioned,
            )
        super().connectionLost(reason)

    # --- from the broker ---------------------------------------------------------------

    def deliver(self, message: SharedMessage) -> None:
        """A message without a position: an envelope client cannot be given it (counted)."""
        self.unpositioned += 1

    def deliver_publication(self, publication: Publication) -> None:
        """A live message with its position: the subscription says what to send (usually just it)."""
        if self.joined:
            self._run(self.subscription.live(publication))

    # --- the subscription's actions -----------------------------------------------------

    def give(self, message: SharedMessage) -> None:
        """Send or queue ``message``, counting it for the heartbeat's idea of "quiet"."""
        self.given += 1
        super().give(message)

    def _run(self, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, Publication):
                self.give(self.factory.frame(action))
            elif isinstance(action, Notice):
                self.give(SharedMessage(Opcode.TEXT, encode_notice(action)))
            else:
                self._fetch(action)

    def _fetch(self, fetch: Fetch) -> None:
        """Read the channel's state and history for ``fetch``; the answer resolves the subscription."""
        answer = self.factory.broker.history(self.channel_name, fetch, self.settings.hub)
        answer.addCallback(self._resolved).addErrback(self._fetch_failed)

    def _resolved(self, answer: tuple[ChannelState, list[Publication]]) -> None:
        if self.joined:
            state, entries = answer
            self._run(self.subscription.resolve(state, entries))

    def _fetch_failed(self, failure: Failure) -> None:
        """History unreadable: 1013, the client retries with its position. Anything else: a bug, 1011."""
        if not self.joined:
            return
        if failure.check(HistoryUnavailable):
            self.log.info(
                "history of channel {channel!r} unavailable ({why}); closing with 1013",
                channel=self.channel_name,
                why=str(failure.value),
            )
            self.close(TRY_AGAIN_LATER, "history unavailable, try again later")
        else:
            self.log.failure("history of channel {channel!r} failed", failure, channel=self.channel_name)
            self.close(INTERNAL_ERROR, "internal error")

    # --- heartbeat ----------------------------------------------------------------------

    def tick(self, now: float) -> None:
        """Once a second: a ``heartbeat`` notice after ``ping_interval_seconds`` of nothing sent."""
        if self.given != self._quiet_seen:
            self._quiet_seen, self._quiet_since = self.given, now
        elif now - self._quiet_since >= self._heartbeat_seconds and not self.queue:
            notice = self.subscription.heartbeat()
            if notice is not None:
                self.give(SharedMessage(Opcode.TEXT, encode_notice(notice)))
                self._quiet_seen, self._quiet_since = self.given, now

    def _leave(self) -> None:
        super()._leave()
        self.factory.heartbeats().discard(self)
