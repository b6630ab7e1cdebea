"""What every broker that spans processes does, whatever carries its bytes (Redis, the relay).

Rules for this file:

* A message published here goes out on the link and is given to this process's
  members when it comes back, so every process delivers a channel's messages in
  the one order the link (Redis) gave them. Until its channel is subscribed on
  the link, a message is given to local members at once instead.
* A message of ours that comes back is delivered if it is still *in flight*
  (sent, not yet back); otherwise it was already delivered here (while the link
  was down, or before the subscription) and is skipped: members get it once.
  When one of ours comes back, the earlier ones of its channel that did not
  (lost in a subscribe race) are delivered first, in order.
* While the link is down, members of this process still get everything at once,
  and messages for the other processes wait in a queue bounded by
  ``max_pending_messages``; when it is full a member's message reaches this
  process only, and a backend's is refused (:class:`PublishRefused`).
* On link up: every channel with members here is subscribed again, then the
  queue is sent, in order. Each change of state is logged once.
* A positioned publish (``history=``) is never queued: the link gives it its
  offset, keeps it in history and sends it on in one step
  (:meth:`Link.publish_positioned`), so while the link is down it fails with
  :class:`HistoryUnavailable`, and so does :meth:`LinkedBroker.history`.
  It comes back like any message of ours, with its position; on a channel not
  yet subscribed on the link it is delivered here when the link answers with
  its position. One whose position never became known (the link went down
  first) is not delivered here: history has it if the link kept it.
* Answers awaited from the link (positions, history reads) are bounded by
  ``max_pending_messages`` too; beyond it, :class:`HistoryUnavailable`. Those
  asked before the link's first attempt ended wait for it (:mod:`.answers`).
"""

from __future__ import annotations

import itertools
import os
from collections import deque
from collections.abc import Callable, Iterable
from functools import partial

from twisted.internet.defer import Deferred, fail, succeed
from twisted.logger import Logger
from zope.interface import implementer

from wsdaemon.broker import payload
from wsdaemon.broker.answers import AwaitedAnswers
from wsdaemon.broker.interface import (
    IBroker,
    LinkObserver,
    LinkState,
    Presence,
    PresenceUnavailable,
    Published,
    PublishRefused,
    Receiver,
    Route,
)
from wsdaemon.broker.link import Link
from wsdaemon.broker.local import Members, new_epoch, published
from wsdaemon.core.frames import Opcode, SharedMessage
from wsdaemon.hub import ChannelState, Fetch, HubLimits, Publication


class _InFlight:
    """One of our messages sent on the link and not back yet."""

    __slots__ = ("exclude", "message", "orphaned", "positioned", "publication", "sequence")

    def __init__(self, sequence: int, message: SharedMessage, exclude: Receiver | None, positioned: bool) -> None:
        self.sequence = sequence
        self.message = message
        self.exclude = exclude
        self.positioned = positioned
        #: The message with its position, once the link answered it.
        self.publication: Publication | None = None
        #: Its turn to be delivered came before its position was known: delivered when it is.
        self.orphaned = False


@implementer(IBroker)
class LinkedBroker:
    """A broker whose channels span processes through a :class:`Link`.

    Args:
        link: what carries the payloads.
        max_pending_messages: messages kept while the link is down (and per channel in flight,
            and answers awaited from the link).
        origin: this process's name in payloads (random by default).
        epochs: makes the epoch a channel gets when the link has none for it.
    """

    log = Logger()

    def __init__(
        self,
        link: Link,
        max_pending_messages: int,
        origin: bytes | None = None,
        epochs: Callable[[], str] = new_epoch,
    ) -> None:
        self.link = link
        self.description = link.description
        self.max_pending_messages = max_pending_messages
        self.origin = origin if origin is not None else os.urandom(payload.ORIGIN_BYTES)
        self.members = Members()
        self.state = LinkState.DOWN
        self.subscribed: set[str] = set()
        self.in_flight: dict[str, deque[_InFlight]] = {}
        self.pending: deque[tuple[str, bytes]] = deque()
        self.not_forwarded = 0
        self.malformed = 0
        self._sequence = itertools.count(1)
        self._observers: list[LinkObserver] = []
        self._failure_logged = False
        self._epochs = epochs
        #: Answers awaited from the link (positions, history reads).
        self.answers = AwaitedAnswers(self.description, max_pending_messages)

    # --- IBroker ----------------------------------------------------------------------

    def publish(
        self,
        channel: str,
        message: SharedMessage,
        exclude: Receiver | None = None,
        local_fallback: bool = True,
        history: HubLimits | None = None,
    ) -> Deferred[Published]:
        """Send ``message`` on the link, or deliver it here and queue it while the link is down."""
        if history is not None:
            return self._publish_positioned(channel, message, exclude, history)
        sequence = next(self._sequence)
        data = payload.encode(message.opcode, message.payload, self.origin, sequence)
        if self.state is LinkState.UP:
            if channel in self.subscribed:
                self._remember(channel, _InFlight(sequence, message, exclude, False))
            else:
                self.members.deliver(channel, message, exclude)
            self.link.publish(channel, data)
            return succeed(published(channel, message, Route.BROKER))
        if len(self.pending) < self.max_pending_messages:
            self.pending.append((channel, data))
            route = Route.QUEUED
        elif not local_fallback:
            return fail(
                PublishRefused(
                    f"the broker is down and {self.max_pending_messages} messages already wait "
                    "(max_pending_messages): nothing was published"
                )
            )
        else:
            route = Route.LOCAL_ONLY
            self._count_not_forwarded()
        self.members.deliver(channel, message, exclude)
        return succeed(published(channel, message, route))

    def history(
        self, channel: str, fetch: Fetch, limits: HubLimits
    ) -> Deferred[tuple[ChannelState, list[Publication]]]:
        """Read the state and the entries in one step on the link; :class:`HistoryUnavailable` while down."""
        down = "the broker is down: history cannot be read now"
        gated = self.answers.gate(self.state is LinkState.UP, down, lambda: self.history(channel, fetch, limits))
        if gated is not None:
            return gated
        epoch = self._epochs()
        return self.answers.ask(lambda: self.link.history(channel, fetch, limits, epoch), "read the channel's history")

    def _publish_positioned(
        self, channel: str, message: SharedMessage, exclude: Receiver | None, limits: HubLimits
    ) -> Deferred[Published]:
        """Have the link position, keep and send ``message``; deliver it here with its position."""
        down = "the broker is down: a message on a channel with history cannot be positioned"
        again = partial(self._publish_positioned, channel, message, exclude, limits)
        gated = self.answers.gate(self.state is LinkState.UP, down, again)
        if gated is not None:
            return gated
        sequence = next(self._sequence)
        entry = _InFlight(sequence, message, exclude, True)
        waits = channel in self.subscribed
        if waits:
            self._remember(channel, entry)
        header = payload.positioned_header(message.opcode, self.origin, sequence)
        epoch = self._epochs()

        def positioned(position: tuple[str, int]) -> Published:
            epoch, offset = position
            publication = Publication(channel, epoch, offset, message.payload, message.opcode == Opcode.BINARY)
            entry.publication = publication
            if not waits or entry.orphaned:
                entry.orphaned = False
                self.members.deliver_positioned(publication, message, exclude)
            return published(channel, message, Route.BROKER, publication)

        sent = self.answers.ask(
            lambda: self.link.publish_positioned(channel, header, message.payload, limits, epoch),
            "position the message",
        )
        return sent.addCallback(positioned)

    def subscribe(self, channel: str, receiver: Receiver) -> None:
        """Join; the channel's first member here subscribes it on the link."""
        if self.members.add(channel, receiver) and self.state is LinkState.UP:
            self.link.subscribe(channel)
        self.link.members_changed(channel, self.members.count(channel))

    def unsubscribe(self, channel: str, receiver: Receiver) -> None:
        """Leave; the channel's last member here unsubscribes it on the link."""
        if not self.members.remove(channel, receiver):
            if self.members.count(channel):
                self.link.members_changed(channel, self.members.count(channel))
            return
        self.link.members_changed(channel, 0)
        self.subscribed.discard(channel)
        self.in_flight.pop(channel, None)
        if self.state is LinkState.UP:
            self.link.unsubscribe(channel)

    def presence(self, channel: str) -> Deferred[Presence]:
        """Members everywhere while the link is up; this process's only (``complete`` false) while down."""
        local = Presence(channel, self.members.count(channel), False)
        if self.state is not LinkState.UP:
            return succeed(local)

        def counted(members: int) -> Presence:
            return Presence(channel, members, True)

        def unavailable(failure: object) -> Presence:
            return local

        return self.link.presence(channel).addCallbacks(counted, unavailable)

    def addLinkObserver(self, observer: LinkObserver) -> None:
        """Call ``observer`` on each state change."""
        self._observers.append(observer)

    def start(self) -> None:
        """Start the link; members here get messages even before it is up."""
        self.answers.starting = True
        self.link.start(self)

    def stop(self) -> Deferred[None]:
        """Stop the link for good (questions still held for its first attempt fail now)."""
        stopped = self.link.stop()
        self.answers.started()
        return stopped

    # --- what the link reports --------------------------------------------------------

    def link_up(self) -> None:
        """Connected: subscribe every channel with members here, then send what waited."""
        self._failure_logged = False
        self.answers.link_up()
        self.state = LinkState.UP
        channels = list(self.members)
        for channel in channels:
            self.link.subscribe(channel)
        waiting = len(self.pending)
        while self.pending and self.state is LinkState.UP:
            self.link.publish(*self.pending.popleft())
        if self.not_forwarded:
            self.log.warn(
                "broker {broker}: {count} messages published while the queue was full reached this process only",
                broker=self.description,
                count=self.not_forwarded,
            )
            self.not_forwarded = 0
        self.log.info(
            "broker {broker}: connected; {channels} channels subscribed, {waiting} waiting messages sent",
            broker=self.description,
            channels=len(channels),
            waiting=waiting,
        )
        self._tell(LinkState.UP)
        self.answers.started()

    def link_down(self, reason: str) -> None:
        """Lost (or never reached): deliver what was in flight here, and wait for the link to come back."""
        if self.state is not LinkState.UP:
            self.link_failed(reason)
            return
        self.state = LinkState.DOWN
        self.subscribed.clear()
        self._flush_in_flight(self.in_flight)
        self.in_flight = {}
        self._failure_logged = True
        self.log.warn(
            "broker {broker}: connection lost ({reason}); members of this process still get every message, "
            "up to {bound} wait for the others; reconnecting",
            broker=self.description,
            reason=reason,
            bound=self.max_pending_messages,
        )
        self._tell(LinkState.DOWN)

    def link_closed(self) -> None:
        """Closed for good (the daemon stops): deliver what was in flight here; nothing to warn about."""
        if self.state is LinkState.UP:
            self.state = LinkState.DOWN
            self.subscribed.clear()
            self._flush_in_flight(self.in_flight)
            self.in_flight = {}
            self.log.info("broker {broker}: disconnected", broker=self.description)
            self._tell(LinkState.DOWN)

    def link_failed(self, reason: str) -> None:
        """A connection attempt failed: logged once until the link is up again."""
        self.answers.started()
        if not self._failure_logged:
            self._failure_logged = True
            self.log.warn(
                "broker {broker}: cannot connect ({reason}); members of this process still get every message; "
                "retrying with backoff",
                broker=self.description,
                reason=reason,
            )

    def link_subscribed(self, channel: str) -> None:
        """The link receives ``channel`` from now on: our messages for it may be awaited."""
        if self.members.count(channel):
            self.subscribed.add(channel)

    def link_message(self, channel: str, data: bytes) -> None:
        """A payload arrived for ``channel``: give it to this process's members (once)."""
        try:
            envelope = payload.decode(data)
        except payload.MalformedPayload as error:
            self._count_malformed(channel, str(error))
            return
        if envelope.origin != self.origin:
            message = SharedMessage(envelope.opcode, envelope.data)
            if envelope.epoch is None or envelope.offset is None:
                self.members.deliver(channel, message)
            else:
                binary = envelope.opcode == Opcode.BINARY
                publication = Publication(channel, envelope.epoch, envelope.offset, envelope.data, binary)
                self.members.deliver_positioned(publication, message)
            return
        waiting = self.in_flight.get(channel)
        while waiting and waiting[0].sequence <= envelope.sequence:
            entry = waiting.popleft()
            if entry.sequence == envelope.sequence and envelope.epoch is not None and envelope.offset is not None:
                binary = envelope.opcode == Opcode.BINARY
                entry.publication = Publication(channel, envelope.epoch, envelope.offset, envelope.data, binary)
            self._deliver(channel, entry)

    # --- bookkeeping ------------------------------------------------------------------

    def _remember(self, channel: str, entry: _InFlight) -> None:
        waiting = self.in_flight.setdefault(channel, deque())
        waiting.append(entry)
        if len(waiting) > self.max_pending_messages:  # not coming back: deliver rather than grow
            self._deliver(channel, waiting.popleft())

    def _deliver(self, channel: str, entry: _InFlight) -> None:
        """Deliver one of our messages here: a positioned one only with its position (else once it is known)."""
        if not entry.positioned:
            self.members.deliver(channel, entry.message, entry.exclude)
        elif entry.publication is not None:
            self.members.deliver_positioned(entry.publication, entry.message, entry.exclude)
        else:
            entry.orphaned = True

    def _flush_in_flight(self, in_flight: dict[str, deque[_InFlight]]) -> None:
        for channel, waiting in in_flight.items():
            for entry in waiting:
                self._deliver(channel, entry)

    def _count_not_forwarded(self) -> None:
        if not self.not_forwarded:
            self.log.warn(
                "broker {broker}: {bound} messages wait for the broker; from now on members' messages "
                "reach this process only, and the publish API answers 503",
                broker=self.description,
                bound=self.max_pending_messages,
            )
        self.not_forwarded += 1

    def _count_malformed(self, channel: str, problem: str) -> None:
        if not self.malformed:
            self.log.warn(
                "broker {broker}: dropped a payload on channel {channel!r} that is not a message: {problem} "
                "(further ones are only counted)",
                broker=self.description,
                channel=channel,
                problem=problem,
            )
        self.malformed += 1

    def _tell(self, state: LinkState) -> None:
        for observer in list(self._observers):
            observer(state)

    def channels(self) -> Iterable[str]:
        """The channels with members in this process."""
        return list(self.members)


def presence_unavailable(reason: str) -> Deferred[int]:
    """A presence query the link cannot answer now."""
    return fail(PresenceUnavailable(reason))
