"""The in-process history: offsets, epochs and a bounded ring per channel.

Rules for this file:

* The store is the source of offsets for an endpoint without a shared
  broker: :meth:`HistoryStore.publish` gives the next offset of the channel
  and keeps the message while the bounds allow.
* A channel's *record* (epoch, last offset, retained messages) is created by
  its first publish or state read, with a new epoch from the injected
  ``new_epoch`` callable. Forgetting a record is losing the channel's
  position: the next record of that name has a new epoch, so no client is
  ever "recovered" across the loss.
* Dropping *messages* is not losing the position: the epoch and the offsets
  go on, and a client whose offset is older than what is retained is told
  ``expired``. Only the count bound forgets records, so a quiet channel keeps
  its epoch and its connected members never see it change.
* Bounds, all from :class:`~wsdaemon.hub.limits.HubLimits`:

  - per channel, at most ``history_size`` messages and ``history_max_bytes``
    payload bytes, the oldest dropped first. What is retained is always the
    newest run of offsets, without holes (a message too big to keep empties
    the ring rather than leaving a hole);
  - a channel with no publish for ``history_ttl_seconds`` drops its messages;
  - across channels, ``history_total_max_bytes`` payload bytes: the oldest
    messages of the least recently published channel go first;
  - ``history_max_channels`` records: the least recently used one (publish
    or state read) is forgotten first, so a client creating channels only
    pushes out idle ones and the store never grows past the bound.

* Time is passed in (``now``: any monotonic seconds, e.g. ``reactor.seconds()``).
  Each call first drops what expired; the store keeps the channels that hold
  messages in publish order apart from all records, so that costs amortized
  O(1) per call.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable
from itertools import islice

from wsdaemon.hub.envelope import Publication
from wsdaemon.hub.limits import HubLimits
from wsdaemon.hub.positions import MAX_OFFSET, ChannelState, is_epoch
from wsdaemon.hub.subscription import Fetch


class _Record:
    """One channel: its epoch, its last offset, the retained messages and when it last got one."""

    __slots__ = ("channel", "epoch", "last_offset", "messages", "payload_bytes", "published")

    def __init__(self, channel: str, epoch: str) -> None:
        self.channel = channel
        self.epoch = epoch
        self.last_offset = 0
        self.messages: deque[Publication] = deque()
        self.payload_bytes = 0
        self.published = 0.0

    def state(self) -> ChannelState:
        return ChannelState(self.epoch, self.last_offset + 1 - len(self.messages), self.last_offset)


class HistoryStore:
    """Offsets, epochs and bounded history for the channels of one endpoint (or process).

    Args:
        limits: the bounds (see the file's rules).
        new_epoch: makes a fresh epoch for each new record (e.g.
            ``lambda: make_epoch(os.urandom(8), time.time())``).
    """

    def __init__(self, limits: HubLimits, new_epoch: Callable[[], str]) -> None:
        self.limits = limits
        self._new_epoch = new_epoch
        #: Every record, least recently used first.
        self._records: OrderedDict[str, _Record] = OrderedDict()
        #: The records holding messages, least recently published first.
        self._retaining: OrderedDict[str, _Record] = OrderedDict()
        self.payload_bytes = 0
        #: Records forgotten because of the count bound (for metrics).
        self.evicted = 0

    def __len__(self) -> int:
        """How many channels have a record."""
        return len(self._records)

    def publish(self, channel: str, payload: bytes, binary: bool, now: float) -> Publication:
        """Give the message its offset and keep it as far as the bounds allow.

        Args:
            channel: a valid channel name (see :func:`~wsdaemon.hub.channels.check_channel`).
            payload: the message (UTF-8 text unless ``binary``).
            binary: whether it is a binary message.
            now: the current time in seconds (never less than in an earlier call).

        Returns:
            The message with its channel, epoch and offset, to deliver live.
        """
        record = self._record(channel, now)
        if record.last_offset >= MAX_OFFSET:  # 285 years at 1M/s; start over rather than leave JS's exact range
            self._forget(channel)
            record = self._record(channel, now)
        record.last_offset += 1
        publication = Publication(channel, record.epoch, record.last_offset, payload, binary)
        record.published = now
        self._keep(record, publication)
        return publication

    def state(self, channel: str, now: float) -> ChannelState:
        """The channel's epoch and retained offsets (creating its record: a subscriber learns its epoch)."""
        return self._record(channel, now).state()

    def entries_after(self, channel: str, after: int, now: float) -> list[Publication]:
        """The retained messages with an offset above ``after``, oldest first."""
        record = self._record(channel, now)
        skip = max(0, after + 1 - (record.last_offset + 1 - len(record.messages)))
        return list(islice(record.messages, skip, None))

    def answer(self, fetch: Fetch, now: float) -> tuple[ChannelState, list[Publication]]:
        """Answer a subscription's :class:`Fetch` at once: the state and the entries it wants."""
        state = self.state(fetch.channel, now)
        return state, self.entries_after(fetch.channel, fetch.after(state), now)

    def __contains__(self, channel: object) -> bool:
        """Whether ``channel`` has a record here (a position and maybe messages)."""
        return channel in self._records

    def hand_over(self, channel: str, to: HistoryStore, now: float) -> None:
        """Move ``channel``'s record (epoch, offsets, retained messages) to the store ``to``.

        A reload can change an endpoint's bounds while members connected before
        it still use the old ones; whichever store serves the channel next must
        go on from its position, never restart it with a new epoch (that would
        split the channel's members in two). What ``to``'s bounds do not allow
        is dropped there, oldest first, as for a publish.
        """
        record = self._records.pop(channel)
        if self._retaining.pop(channel, None) is not None:
            self.payload_bytes -= record.payload_bytes
        to._adopt(record, now)

    def _adopt(self, record: _Record, now: float) -> None:
        """Take a record handed over by another store, then trim everything to this store's bounds."""
        self.expire(now)
        while len(self._records) >= self.limits.history_max_channels:
            self._forget(next(iter(self._records)))
        self._records[record.channel] = record
        if not record.messages:
            return
        self._retaining[record.channel] = record
        self.payload_bytes += record.payload_bytes
        limits = self.limits
        if record.published <= now - limits.history_ttl_seconds:
            self._drop_oldest(record, len(record.messages))
        while len(record.messages) > limits.history_size or record.payload_bytes > limits.history_max_bytes:
            self._drop_oldest(record, 1)
        while self.payload_bytes > limits.history_total_max_bytes:
            self._drop_oldest(next(iter(self._retaining.values())), 1)

    def expire(self, now: float) -> int:
        """Drop the messages of every channel with no publish for ``history_ttl_seconds``.

        Called by every other method; call it from a timer too, so that idle
        history is freed even when no request comes.

        Returns:
            How many channels lost their messages.
        """
        deadline = now - self.limits.history_ttl_seconds
        expired = 0
        while self._retaining:
            record = next(iter(self._retaining.values()))
            if record.published > deadline:
                break
            self._drop_oldest(record, len(record.messages))
            expired += 1
        return expired

    def _record(self, channel: str, now: float) -> _Record:
        """The channel's record, created (with a new epoch) if needed, after dropping what expired."""
        self.expire(now)
        record = self._records.get(channel)
        if record is None:
            epoch = self._new_epoch()
            if not is_epoch(epoch):
                raise ValueError(f"new_epoch() returned a malformed epoch {epoch!r}")
            while len(self._records) >= self.limits.history_max_channels:
                self._forget(next(iter(self._records)))
            record = self._records[channel] = _Record(channel, epoch)
        else:
            self._records.move_to_end(channel)
        return record

    def _keep(self, record: _Record, publication: Publication) -> None:
        """Append to the ring, then trim it and the other channels to the bounds."""
        limits = self.limits
        size = len(publication.payload)
        if limits.history_size == 0 or size > limits.history_max_bytes or size > limits.history_total_max_bytes:
            self._drop_oldest(record, len(record.messages))  # not kept: the older go too, so history has no hole
            return
        record.messages.append(publication)
        record.payload_bytes += size
        self.payload_bytes += size
        self._retaining[record.channel] = record
        self._retaining.move_to_end(record.channel)
        while len(record.messages) > limits.history_size or record.payload_bytes > limits.history_max_bytes:
            self._drop_oldest(record, 1)  # the newest fits (checked above), so this ends before the ring is empty
        while self.payload_bytes > limits.history_total_max_bytes:
            self._drop_oldest(next(iter(self._retaining.values())), 1)

    def _drop_oldest(self, record: _Record, count: int) -> None:
        """Drop a record's ``count`` oldest messages (its position stays)."""
        messages = record.messages
        for _ in range(min(count, len(messages))):
            size = len(messages.popleft().payload)
            record.payload_bytes -= size
            self.payload_bytes -= size
        if not messages:
            self._retaining.pop(record.channel, None)

    def _forget(self, channel: str) -> None:
        """Forget a record entirely: the channel's next record has a new epoch."""
        record = self._records.pop(channel)
        self._drop_oldest(record, len(record.messages))
        self.evicted += 1
