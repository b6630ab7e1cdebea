"""The in-process broker: channels inside one process, today's behaviour and the default.

Rules for this file:

* A plain publish is delivered at once, synchronously, in call order.
* A positioned publish (``history=``) is given its offset by a
  :class:`~wsdaemon.hub.HistoryStore`, one per distinct
  :class:`~wsdaemon.hub.HubLimits` (endpoints with equal bounds share one; their
  channels never collide since a channel is named by its endpoint's path). Each
  store's epochs come from ``os.urandom`` and the wall clock, so a restarted
  daemon starts every channel in a new epoch and its clients are told they were
  not recovered.
* Time for the stores is the injected clock's ``seconds()``; a timer started by
  :meth:`InProcessBroker.start` drops idle history every
  :data:`EXPIRE_INTERVAL_SECONDS` even when nothing is published or read.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import LoopingCall
from zope.interface import implementer

from wsdaemon.broker.interface import IBroker, LinkObserver, LinkState, Presence, Published, Receiver, Route
from wsdaemon.core.frames import Opcode, SharedMessage
from wsdaemon.hub import ChannelState, Fetch, HistoryStore, HubLimits, Publication, make_epoch

#: How often idle history is dropped (the stores also drop it on every call): a second late at most.
EXPIRE_INTERVAL_SECONDS = 1.0


def new_epoch() -> str:
    """A fresh epoch: 8 random bytes and the wall-clock time (see :func:`~wsdaemon.hub.make_epoch`)."""
    return make_epoch(os.urandom(8), time.time())


class Members:
    """The receivers of each channel of this process, in the order they joined.

    The brokers that span processes share it: local delivery is the same everywhere.
    """

    def __init__(self) -> None:
        self.channels: dict[str, dict[Receiver, None]] = {}

    def add(self, channel: str, receiver: Receiver) -> bool:
        """Add a member; True if it is the channel's first (the channel starts here)."""
        members = self.channels.get(channel)
        if members is None:
            self.channels[channel] = {receiver: None}
            return True
        members[receiver] = None
        return False

    def remove(self, channel: str, receiver: Receiver) -> bool:
        """Remove a member; True if the channel has no member left (it ends here)."""
        members = self.channels.get(channel)
        if members is None or receiver not in members:
            return False
        del members[receiver]
        if members:
            return False
        del self.channels[channel]
        return True

    def count(self, channel: str) -> int:
        """Members of ``channel`` in this process."""
        return len(self.channels.get(channel, ()))

    def __iter__(self) -> Iterator[str]:
        return iter(list(self.channels))

    def deliver(self, channel: str, message: SharedMessage, exclude: Receiver | None = None) -> None:
        """Give ``message`` to every member of ``channel`` but ``exclude``; a slow member only queues it."""
        members = self.channels.get(channel)
        if members is None:
            return
        for receiver in list(members):
            if receiver is not exclude:
                receiver.deliver(message)

    def deliver_positioned(
        self, publication: Publication, message: SharedMessage, exclude: Receiver | None = None
    ) -> None:
        """Give one positioned message: its :class:`Publication` to history members, ``message`` to the others.

        Both objects are shared by every member, so the message is framed (or
        enveloped) once per process however many members it reaches.
        """
        members = self.channels.get(publication.channel)
        if members is None:
            return
        for receiver in list(members):
            if receiver is exclude:
                continue
            deliver_publication: Callable[[Publication], None] | None = getattr(receiver, "deliver_publication", None)
            if deliver_publication is not None:
                deliver_publication(publication)
            else:
                receiver.deliver(message)


def published(channel: str, message: SharedMessage, route: Route, position: Publication | None = None) -> Published:
    """The answer describing one publish (with its epoch and offset when it was positioned)."""
    size, binary = len(message.payload), message.opcode == Opcode.BINARY
    if position is None:
        return Published(channel, size, binary, route)
    return Published(channel, size, binary, route, position.epoch, position.offset)


class HistoryStores:
    """One :class:`~wsdaemon.hub.HistoryStore` per distinct set of bounds, on one clock.

    Args:
        clock: gives ``seconds()`` (the reactor).
        epochs: makes each new channel record's epoch.
    """

    def __init__(self, clock: Any, epochs: Callable[[], str] = new_epoch) -> None:
        self.clock = clock
        self.epochs = epochs
        self.stores: dict[HubLimits, HistoryStore] = {}

    def store(self, limits: HubLimits) -> HistoryStore:
        """The store for ``limits``, created on first use."""
        store = self.stores.get(limits)
        if store is None:
            store = self.stores[limits] = HistoryStore(limits, self.epochs)
        return store

    def publish(self, channel: str, message: SharedMessage, limits: HubLimits) -> Publication:
        """Position ``message`` in ``channel`` and keep it within ``limits``."""
        binary = message.opcode == Opcode.BINARY
        return self.store(limits).publish(channel, message.payload, binary, self.clock.seconds())

    def answer(self, fetch: Fetch, limits: HubLimits) -> tuple[ChannelState, list[Publication]]:
        """The state and entries ``fetch`` asks for, read together."""
        return self.store(limits).answer(fetch, self.clock.seconds())

    def expire(self) -> None:
        """Drop the history of every channel idle for its store's ``history_ttl_seconds``."""
        now = self.clock.seconds()
        for store in self.stores.values():
            store.expire(now)


@implementer(IBroker)
class InProcessBroker:
    """Channels that live in this process only: members of other processes never see them.

    Args:
        clock: the reactor (``seconds()``, ``callLater``) for history; the global
            reactor when not given.
        epochs: makes new epochs (tests pass a deterministic one).
    """

    description = "in-process"
    state = LinkState.LOCAL

    def __init__(self, clock: Any = None, epochs: Callable[[], str] = new_epoch) -> None:
        if clock is None:
            from twisted.internet import reactor as clock
        self.members = Members()
        self.history_stores = HistoryStores(clock, epochs)
        self._expiry = LoopingCall(self.history_stores.expire)
        self._expiry.clock = clock

    def publish(
        self,
        channel: str,
        message: SharedMessage,
        exclude: Receiver | None = None,
        local_fallback: bool = True,
        history: HubLimits | None = None,
    ) -> Deferred[Published]:
        """Deliver now, synchronously, in call order; positioned first when ``history`` is given."""
        if history is None:
            self.members.deliver(channel, message, exclude)
            return succeed(published(channel, message, Route.LOCAL))
        publication = self.history_stores.publish(channel, message, history)
        self.members.deliver_positioned(publication, message, exclude)
        return succeed(published(channel, message, Route.LOCAL, publication))

    def history(
        self, channel: str, fetch: Fetch, limits: HubLimits
    ) -> Deferred[tuple[ChannelState, list[Publication]]]:
        """Answered at once: the state and the entries are read in one call, so nothing can come between."""
        return succeed(self.history_stores.answer(fetch, limits))

    def subscribe(self, channel: str, receiver: Receiver) -> None:
        """Join ``channel``."""
        self.members.add(channel, receiver)

    def unsubscribe(self, channel: str, receiver: Receiver) -> None:
        """Leave ``channel``; an empty channel is forgotten."""
        self.members.remove(channel, receiver)

    def presence(self, channel: str) -> Deferred[Presence]:
        """This process is everything there is."""
        return succeed(Presence(channel, self.members.count(channel), True))

    def addLinkObserver(self, observer: LinkObserver) -> None:
        """The state never changes, so ``observer`` is never called."""

    def start(self) -> None:
        """Nothing to connect to; start dropping idle history on a timer."""
        if not self._expiry.running:
            self._expiry.start(EXPIRE_INTERVAL_SECONDS, now=False)

    def stop(self) -> Deferred[None]:
        """Nothing to disconnect; stop the history timer."""
        if self._expiry.running:
            self._expiry.stop()
        return succeed(None)
