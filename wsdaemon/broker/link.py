"""The bytes side of a :class:`~wsdaemon.broker.linked.LinkedBroker`: what Redis and the workers' relay provide.

A link connects and reconnects, carries payloads (:mod:`wsdaemon.broker.payload`)
and reports back through the broker's ``link_*`` methods; positioned publishes and
history reads are each one step on its side (one Redis script, one message to the
main process), so no two processes can reorder offsets, history and delivery.
"""

from __future__ import annotations

import typing
from typing import Protocol

if typing.TYPE_CHECKING:
    from twisted.internet.defer import Deferred

    from wsdaemon.broker.linked import LinkedBroker
    from wsdaemon.hub import ChannelState, Fetch, HubLimits, Publication


class Link(Protocol):
    """The bytes side of a :class:`LinkedBroker`: it connects, and reports with the broker's ``link_*`` methods."""

    description: str

    def start(self, broker: LinkedBroker) -> None:
        """Connect (and reconnect after losses) until stopped."""

    def stop(self) -> Deferred[None]:
        """Disconnect for good, removing what this process announced (presence)."""

    def publish(self, channel: str, data: bytes) -> None:
        """Send one payload to every subscriber of ``channel`` (only called while up)."""

    def publish_positioned(
        self, channel: str, header: bytes, data: bytes, limits: HubLimits, epoch: str
    ) -> Deferred[tuple[str, int]]:
        """In one step: give the channel's next offset, keep the message in history, send it to every subscriber.

        The payload sent is ``header``, the position, then ``data`` (see
        :func:`~wsdaemon.broker.payload.positioned_header`); ``epoch`` is the
        channel's epoch if it has none yet. Fires with the (epoch, offset) given.
        Only called while up.
        """

    def history(
        self, channel: str, fetch: Fetch, limits: HubLimits, epoch: str
    ) -> Deferred[tuple[ChannelState, list[Publication]]]:
        """The channel's state and the entries ``fetch`` wants, read in one step (``epoch`` as above)."""

    def subscribe(self, channel: str) -> None:
        """Start receiving ``channel``; confirmed by ``broker.link_subscribed`` (only called while up)."""

    def unsubscribe(self, channel: str) -> None:
        """Stop receiving ``channel`` (only called while up)."""

    def members_changed(self, channel: str, count: int) -> None:
        """This process now has ``count`` members of ``channel`` (for presence)."""

    def presence(self, channel: str) -> Deferred[int]:
        """Members of ``channel`` in every process the link reaches."""
