"""Recovery for the reconnecting client on ``envelope = "json"`` endpoints (docs/recovery.md §5).

:class:`EnvelopeResumption` is the :class:`~wsdaemon.adapter.reconnect.Resumption`
of the JSON envelope protocol. It keeps the one piece of state a client needs,
the position (epoch, offset) of the last message or notice, asks for what
followed it on every reconnect (``?since=OFFSET&epoch=EPOCH``), unwraps each
message to what was published, drops duplicates, and tells its user when
messages were lost (a ``not_recovered`` notice). It does no I/O: the client
feeds it messages and asks it for URLs, so it is tested without sockets.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit

from wsdaemon.adapter.reconnect import ResumeFailed
from wsdaemon.hub import InvalidEnvelope, Notice, NoticeType, UnknownEnvelope, parse_envelope


class EnvelopeResumption:
    """Resume an envelope endpoint's stream after a reconnect; see the module docstring.

    Args:
        on_notice: told of every ``subscribed``, ``recovered`` and
            ``not_recovered`` notice (heartbeats are not passed on). A
            ``not_recovered`` one means messages are missing: its ``reason``
            says why (docs/recovery.md §3).
        history: on the first connection ask for the recent history too
            (``?since=0``), as a chat does; otherwise start from now.

    Attributes:
        position: ``(epoch, offset)`` of the last message or notice, None before the first.
    """

    def __init__(self, on_notice: Callable[[Notice], None] | None = None, *, history: bool = False) -> None:
        self.on_notice = on_notice
        self.history = history
        self.position: tuple[str, int] | None = None

    def url(self, base_url: str) -> str:
        """``base_url`` with the recovery query for the current position (kept beside any other query).

        Any ``since`` or ``epoch`` already in ``base_url`` is replaced, so
        the server never sees them twice (it would refuse that with 400).
        """
        if self.position is not None:
            epoch, offset = self.position
            query = f"since={offset}&epoch={epoch}"
        elif self.history:
            query = "since=0"
        else:
            return base_url
        parts = urlsplit(base_url)
        kept = [item for item in parts.query.split("&") if item and item.partition("=")[0] not in ("since", "epoch")]
        return parts._replace(query="&".join([*kept, query]), fragment="").geturl()

    def received(self, message: str | bytes) -> str | bytes | None:
        """The published message inside an envelope (``str`` text, ``bytes`` binary), or None.

        None for a notice, a notice type this version does not know, and a
        duplicate (an offset already seen in this epoch).

        Raises:
            ResumeFailed: not an envelope, or a message out of sequence: the
                client closes with 1002 and reconnects from the position.
        """
        if isinstance(message, bytes):
            raise ResumeFailed("a binary message on an envelope endpoint")
        try:
            item = parse_envelope(message)
        except UnknownEnvelope:
            return None
        except InvalidEnvelope as error:
            raise ResumeFailed(f"invalid envelope: {error}") from None
        if isinstance(item, Notice):
            self._notice(item)
            return None
        position = self.position
        if position is not None and item.epoch == position[0] and item.offset <= position[1]:
            return None
        if position is not None and (item.epoch != position[0] or item.offset != position[1] + 1):
            raise ResumeFailed(f"message {item.epoch}/{item.offset} does not follow {position[0]}/{position[1]}")
        self.position = (item.epoch, item.offset)
        return item.data

    def _notice(self, notice: Notice) -> None:
        self.position = (notice.epoch, notice.offset)
        if notice.type != NoticeType.HEARTBEAT and self.on_notice is not None:
            self.on_notice(notice)
