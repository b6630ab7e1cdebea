"""The in-process broker: channels inside one process, today's behaviour and the default."""

from __future__ import annotations

from collections.abc import Iterator

from twisted.internet.defer import Deferred, succeed
from zope.interface import implementer

from wsdaemon.broker.interface import IBroker, LinkObserver, LinkState, Presence, Published, Receiver, Route
from wsdaemon.core.frames import Opcode, SharedMessage


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


def published(channel: str, message: SharedMessage, route: Route) -> Published:
    """The answer describing one publish."""
    return Published(channel, len(message.payload), message.opcode == Opcode.BINARY, route)


@implementer(IBroker)
class InProcessBroker:
    """Channels that live in this process only: members of other processes never see them."""

    description = "in-process"
    state = LinkState.LOCAL

    def __init__(self) -> None:
        self.members = Members()

    def publish(
        self, channel: str, message: SharedMessage, exclude: Receiver | None = None, local_fallback: bool = True
    ) -> Deferred[Published]:
        """Deliver now, synchronously, in call order."""
        self.members.deliver(channel, message, exclude)
        return succeed(published(channel, message, Route.LOCAL))

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
        """Nothing to connect to."""

    def stop(self) -> Deferred[None]:
        """Nothing to disconnect."""
        return succeed(None)
