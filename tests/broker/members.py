"""Members the broker tests subscribe: plain ones, and ones of channels with history."""

from __future__ import annotations

from wsdaemon.core.frames import SharedMessage
from wsdaemon.hub import Publication


class Plain:
    """A member without history: it only has ``deliver`` (``got`` holds the payloads)."""

    def __init__(self) -> None:
        self.messages: list[SharedMessage] = []
        self.got: list[bytes] = []

    def deliver(self, message: SharedMessage) -> None:
        self.messages.append(message)
        self.got.append(message.payload)


class Positioned(Plain):
    """A member of a channel with history (a HistoryReceiver): it gets publications."""

    def __init__(self) -> None:
        super().__init__()
        self.publications: list[Publication] = []

    def deliver_publication(self, publication: Publication) -> None:
        self.publications.append(publication)

    def offsets(self) -> list[int]:
        """The offsets of the publications it got, in order."""
        return [p.offset for p in self.publications]
