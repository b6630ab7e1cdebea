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
"""

from __future__ import annotations

import itertools
import os
from collections import deque
from collections.abc import Iterable
from typing import Protocol

from twisted.internet.defer import Deferred, fail, succeed
from twisted.logger import Logger
from zope.interface import implementer

from wsdaemon.broker import payload
from wsdaemon.broker.interface import (
    HistoryUnavailable,
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
from wsdaemon.broker.local import Members, published
from wsdaemon.core.frames import SharedMessage
from wsdaemon.hub import ChannelState, Fetch, HubLimits, Publication

_InFlight = tuple[int, SharedMessage, Receiver | None]


class Link(Protocol):
    """The bytes side of a :class:`LinkedBroker`: it connects, and reports with the broker's ``link_*`` methods."""

    description: str

    def start(self, broker: LinkedBroker) -> None:
        """Connect (and reconnect after losses) until stopped."""

    def stop(self) -> Deferred[None]:
        """Disconnect for good, removing what this process announced (presence)."""

    def publish(self, channel: str, data: bytes) -> None:
        """Send one payload to every subscriber of ``channel`` (only called while up)."""

    def subscribe(self, channel: str) -> None:
        """Start receiving ``channel``; confirmed by ``broker.link_subscribed`` (only called while up)."""

    def unsubscribe(self, channel: str) -> None:
        """Stop receiving ``channel`` (only called while up)."""

    def members_changed(self, channel: str, count: int) -> None:
        """This process now has ``count`` members of ``channel`` (for presence)."""

    def presence(self, channel: str) -> Deferred[int]:
        """Members of ``channel`` in every process the link reaches."""


@implementer(IBroker)
class LinkedBroker:
    """A broker whose channels span processes through a :class:`Link`.

    Args:
        link: what carries the payloads.
        max_pending_messages: messages kept while the link is down (and per channel in flight).
        origin: this process's name in payloads (random by default).
    """

    log = Logger()

    def __init__(self, link: Link, max_pending_messages: int, origin: bytes | None = None) -> None:
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
            return fail(HistoryUnavailable("positioned publishes need the in-process broker for now"))
        sequence = next(self._sequence)
        data = payload.encode(message.opcode, message.payload, self.origin, sequence)
        if self.state is LinkState.UP:
            if channel in self.subscribed:
                self._remember(channel, (sequence, message, exclude))
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
        """Not kept across processes yet."""
        return fail(HistoryUnavailable("history needs the in-process broker for now"))

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
        self.link.start(self)

    def stop(self) -> Deferred[None]:
        """Stop the link for good."""
        return self.link.stop()

    # --- what the link reports --------------------------------------------------------

    def link_up(self) -> None:
        """Connected: subscribe every channel with members here, then send what waited."""
        self._failure_logged = False
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
            self.members.deliver(channel, SharedMessage(envelope.opcode, envelope.data))
            return
        waiting = self.in_flight.get(channel)
        while waiting and waiting[0][0] <= envelope.sequence:
            _, message, exclude = waiting.popleft()
            self.members.deliver(channel, message, exclude)

    # --- bookkeeping ------------------------------------------------------------------

    def _remember(self, channel: str, entry: _InFlight) -> None:
        waiting = self.in_flight.setdefault(channel, deque())
        waiting.append(entry)
        if len(waiting) > self.max_pending_messages:  # not coming back: deliver rather than grow
            _, message, exclude = waiting.popleft()
            self.members.deliver(channel, message, exclude)

    def _flush_in_flight(self, in_flight: dict[str, deque[_InFlight]]) -> None:
        for channel, waiting in in_flight.items():
            for _, message, exclude in waiting:
                self.members.deliver(channel, message, exclude)

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
