"""The broker seam: how channels reach members in other processes and on other hosts.

Rules for this file:

* A broker carries published messages to every member of a channel, wherever it
  is connected. Members are :class:`Receiver` objects subscribed in this
  process; the broker delivers to them with one :class:`SharedMessage` per
  message per process, so a message is framed once per process.
* Messages of one publisher reach every member in the publisher's order.
* ``publish`` never raises; what it did is the :class:`Published` its Deferred
  fires with, or a :class:`PublishRefused` failure (its ``status`` is the HTTP
  answer of the publish API).
* Link state changes are told to observers once per change, never per retry.
* A *positioned* publish (``history=`` given) gives the message the channel's
  next offset in its epoch, keeps it in history within the endpoint's
  :class:`~wsdaemon.hub.HubLimits`, and hands it to every member as one
  :class:`~wsdaemon.hub.Publication` per process, through
  :meth:`HistoryReceiver.deliver_publication`. Assigning the offset, appending
  and handing on are one step, so no two hosts can reorder them.
"""

from __future__ import annotations

import enum
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, Protocol

from zope.interface import Attribute, Interface

if typing.TYPE_CHECKING:
    from twisted.internet.defer import Deferred

    from wsdaemon.core.frames import SharedMessage
    from wsdaemon.hub import ChannelState, Fetch, HubLimits, Publication


class LinkState(enum.Enum):
    """Whether a broker reaches the other processes now."""

    #: In-process broker: there is nothing to link to, and nothing can go down.
    LOCAL = "local"
    #: Connected: messages reach every process.
    UP = "up"
    #: Not connected (starting, or lost): only members of this process get messages.
    DOWN = "down"


class Route(enum.Enum):
    """Where a published message went (the ``route`` of the publish API's answer)."""

    #: Given to the members of this process (in-process broker).
    LOCAL = "local"
    #: Handed to the broker: it reaches every process.
    BROKER = "broker"
    #: The broker is down: given to this process's members and queued for the others.
    QUEUED = "queued"
    #: The broker is down and its queue is full: given to this process's members only.
    LOCAL_ONLY = "local-only"


class Receiver(Protocol):
    """A member of a channel, as the broker sees it."""

    def deliver(self, message: SharedMessage) -> None:
        """Send ``message`` to the member's peer (or queue it behind earlier ones)."""


class HistoryReceiver(Receiver, Protocol):
    """A member of a channel with history: it gets each message with its position."""

    def deliver_publication(self, publication: Publication) -> None:
        """Hand ``publication`` (channel, epoch, offset, payload) to the member's subscription."""


@dataclass(frozen=True)
class Published:
    """What one publish did: the answer of ``POST /api/publish``."""

    channel: str
    size_bytes: int
    binary: bool
    route: Route
    #: The channel's epoch and the message's offset, for a positioned publish (else ``None``).
    epoch: str | None = None
    offset: int | None = None


@dataclass(frozen=True)
class Presence:
    """Members of a channel; ``complete`` is false when only this process could be counted."""

    channel: str
    members: int
    complete: bool


class PublishRefused(Exception):
    """The broker is down and its queue of waiting messages is full: nothing was published.

    ``str()`` is safe to send to the publisher (it comes from our own strings).
    """

    status: ClassVar[int] = 503


class HistoryUnavailable(Exception):
    """The broker cannot read (or position into) a channel's history right now.

    ``str()`` is safe to send to a client or publisher (it comes from our own strings).
    """

    status: ClassVar[int] = 503


class PresenceUnavailable(Exception):
    """The broker cannot count members across processes right now."""

    status: ClassVar[int] = 503


LinkObserver = Callable[[LinkState], None]


class IBroker(Interface):
    """Publish/subscribe across workers and hosts, behind one small interface (DESIGN §6)."""

    description = Attribute("A short, secret-free description for logs: 'in-process' or 'redis://host:port/db'.")
    state = Attribute("The :class:`LinkState` now.")

    def publish(
        channel: str,
        message: SharedMessage,
        exclude: Receiver | None = None,
        local_fallback: bool = True,
        history: HubLimits | None = None,
    ) -> Deferred[Published]:
        """Give ``message`` to every member of ``channel`` everywhere (except ``exclude``, in this process).

        With ``local_fallback`` false, a message that could reach no other process (the broker
        is down and its queue full) is refused (:class:`PublishRefused`) instead of being given
        to this process's members only.

        With ``history`` (the endpoint's bounds; ``history_size`` may be 0), the publish is
        positioned: the answer carries ``epoch`` and ``offset``, the message is kept in history
        within those bounds, and members that are :class:`HistoryReceiver` get it through
        ``deliver_publication``. A positioned publish that cannot be positioned (the broker is
        down) fails with :class:`HistoryUnavailable` rather than go out without an offset.
        """

    def history(channel: str, fetch: Fetch, limits: HubLimits) -> Deferred[tuple[ChannelState, list[Publication]]]:
        """The channel's state and the kept messages that ``fetch`` asks for, in offset order.

        Fails with :class:`HistoryUnavailable` when the history cannot be read now.
        """

    def subscribe(channel: str, receiver: Receiver) -> None:
        """Make ``receiver`` a member of ``channel``: it gets what is published from now on."""

    def unsubscribe(channel: str, receiver: Receiver) -> None:
        """``receiver`` leaves ``channel`` (nothing happens if it was not a member)."""

    def presence(channel: str) -> Deferred[Presence]:
        """The number of members of ``channel`` in every process the broker reaches."""

    def addLinkObserver(observer: LinkObserver) -> None:
        """Call ``observer(state)`` on each change of :attr:`state`."""

    def start() -> None:
        """Start linking (connect, subscribe); the daemon calls it when it starts."""

    def stop() -> Deferred[None]:
        """Stop linking and say goodbye (presence entries removed); the daemon waits for it on shutdown."""
