"""One subscriber's switch from history to live: no gap, no duplicate.

Rules for this file:

* A :class:`Subscription` is created when a member joins, *after* it is
  registered for the channel's live messages. Its first action is a
  :class:`Fetch`; the caller reads the channel's state and the history the
  fetch wants (at once in-process, later from Redis) and hands them to
  :meth:`Subscription.resolve`.
* While a fetch is outstanding (``PENDING``) live messages are buffered,
  bounded by ``replay_buffer_max_messages`` and ``replay_buffer_max_bytes``.
  ``resolve`` then emits the notice, the history, and the buffered messages
  not already covered by the history (deduplicated by offset), and the
  subscription is ``LIVE``.
* ``LIVE``, a message is delivered when it is the next offset of the current
  epoch; an offset already delivered is dropped (a duplicate). Anything else
  is a gap (the broker link lost messages) or another epoch: the
  subscription fetches again from its position, buffering meanwhile. A gap
  still in history is then filled seamlessly; a new epoch is announced with
  ``not_recovered`` (``epoch_changed``); a late message of an old epoch is
  dropped, because the state read shows it is not current.
* Which epoch is current is only ever decided by a state read, because a
  late message of a lost epoch and an early one of a new epoch look alike.
  A message of another epoch is therefore held and the state read again.
  Epochs never come back, so a held message of another epoch than a read
  says is stale, and dropped, when it was received before that read's fetch
  was issued or before a message of the read epoch.
* So the client sees only messages of the epoch its last notice named, each
  the next offset after the one before.
* A full buffer is not an error either: later live messages are dropped and,
  once the fetch is resolved, the subscription fetches again from where it
  got to. Everything dropped was published before that second fetch, so
  history has it if it is still retained.
* A gap that history cannot fill (it has a hole, or the messages expired) is
  announced with a ``not_recovered`` notice (reason ``gap`` or ``expired``)
  just before the message after it; so a client *never* sees a silent gap.
  Every further fetch either delivers something or settles an epoch
  question, so a subscription never fetches in a loop.
* The caller's side of the contract: pass live messages in the order the
  broker delivered them; answer a :class:`Fetch` with a state and entries
  read together, after the fetch was issued, with *every* retained entry it
  asks for (no truncation); at most one fetch is outstanding per subscription.
* Actions come out as a list, in order: :class:`~wsdaemon.hub.envelope.Publication`
  (deliver it), :class:`~wsdaemon.hub.envelope.Notice` (deliver it on
  envelope endpoints), :class:`Fetch` (start a fetch; at most one is
  outstanding).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from enum import Enum

from wsdaemon.hub.envelope import Notice, NoticeType, Publication, Reason
from wsdaemon.hub.limits import HubLimits
from wsdaemon.hub.positions import ChannelState
from wsdaemon.hub.recovery import RecoveryQuery, decide


@dataclass(frozen=True, slots=True)
class Fetch:
    """A request to read a channel's state and the history a subscriber needs.

    The reader must read the state and the entries together (one Redis
    script, or one reactor turn in-process): ``state`` first, then every
    retained message with an offset above :meth:`after` of that state, in
    order.

    Attributes:
        channel: the channel to read.
        query: the position to resume from (``None``: only the state is needed).
    """

    channel: str
    query: RecoveryQuery | None

    def after(self, state: ChannelState) -> int:
        """The offset after which history entries are wanted (none if it is ``state.last_offset``)."""
        return decide(self.query, state).offset


#: What a subscription asks its caller to do, in order.
Action = Publication | Notice | Fetch


class Phase(Enum):
    """Where a subscription is: waiting for a fetch, or live."""

    PENDING = "pending"
    LIVE = "live"


class Subscription:
    """The replay/live switch of one member of one channel.

    Args:
        channel: the channel's name.
        query: the client's recovery query (``None``: a plain subscription).
        limits: ``replay_buffer_max_messages`` and ``replay_buffer_max_bytes``.
    """

    def __init__(self, channel: str, query: RecoveryQuery | None, limits: HubLimits) -> None:
        self.channel = channel
        self.phase = Phase.PENDING
        #: The position of the last message delivered (``None`` before the first resolve).
        self.epoch: str | None = None
        self.offset = 0
        self._query = query
        self._max_messages = limits.replay_buffer_max_messages
        self._max_bytes = limits.replay_buffer_max_bytes
        #: Held messages received before the outstanding fetch was issued, then after it.
        self._before: deque[Publication] = deque()
        self._after: deque[Publication] = deque()
        self._held_bytes = 0
        self._overflowed = False
        #: Fetches started after the first (for logs and metrics).
        self.refetches = 0

    def start(self) -> Fetch:
        """The first fetch: call once, after registering the subscriber for live messages."""
        return Fetch(self.channel, self._query)

    def heartbeat(self) -> Notice | None:
        """A ``heartbeat`` notice with the position of the last message delivered, or ``None`` while pending.

        The caller sends it on an idle envelope connection (through the same
        queue as messages, so it never overtakes one): browsers cannot see
        WebSocket pings, and on a quiet channel this traffic is how they
        notice a dead link. While a fetch is pending nothing is sent, since the
        position is not settled.
        """
        if self.phase is Phase.PENDING or self.epoch is None:
            return None
        return Notice(NoticeType.HEARTBEAT, self.channel, self.epoch, self.offset)

    def live(self, publication: Publication) -> list[Action]:
        """A live message of this channel arrived: what to do now.

        Returns:
            ``[publication]`` in the common case; ``[]`` for a duplicate or
            while a fetch is pending; ``[Fetch]`` when a gap or another epoch
            was seen.
        """
        if self.phase is Phase.LIVE and publication.offset == self.offset + 1 and publication.epoch == self.epoch:
            self.offset += 1  # the common case first, without building anything
            return [publication]
        if self.phase is Phase.PENDING:
            self._hold(publication, self._after)
            return []
        actions: list[Action] = []
        self._take(publication, actions, covered_to=-1)
        return actions

    def resolve(self, state: ChannelState, entries: list[Publication]) -> list[Action]:
        """The outstanding fetch's answer arrived: the notice, history and held messages to deliver.

        Args:
            state: the channel's state as read by the fetch.
            entries: every retained message after ``fetch.after(state)``, in
                order, none left out (entries of another epoch are ignored).

        Returns:
            The actions, in order; a :class:`Fetch` at the end when the
            buffer had overflowed or a held message showed a gap or another
            epoch.

        Raises:
            RuntimeError: no fetch is outstanding (a caller bug).
        """
        if self.phase is not Phase.PENDING:
            raise RuntimeError("resolve() without an outstanding fetch")
        first_time = self.epoch is None
        decision = decide(self._query, state)
        actions: list[Action] = []
        if first_time or decision.outcome is NoticeType.NOT_RECOVERED:
            actions.append(decision.notice(self.channel))
        self.epoch, self.offset = decision.epoch, decision.offset
        for entry in entries:
            if entry.epoch == self.epoch and entry.offset > self.offset:
                self._deliver(entry, actions)
        # Received before this fetch was issued, yet of another epoch than it read: stale (epochs never return).
        held = [p for p in self._before if p.epoch == self.epoch]
        held.extend(self._after)
        overflowed = self._overflowed
        self._before, self._after, self._held_bytes, self._overflowed = deque(), deque(), 0, False
        self.phase = Phase.LIVE
        # Held before a message of the read epoch, so published before that epoch began: stale too.
        first_current = next((i for i, p in enumerate(held) if p.epoch == self.epoch), 0)
        for publication in held[first_current:]:
            self._take(publication, actions, covered_to=state.last_offset)
        if overflowed and self.phase is Phase.LIVE:
            self._refetch(actions)  # what the full buffer dropped was published before this fetch
        return actions

    def _take(self, publication: Publication, actions: list[Action], covered_to: int) -> None:
        """Deliver, drop, hold or refetch for one message received before any fetch now outstanding.

        Args:
            publication: the live message.
            actions: where to append what to do.
            covered_to: the last offset the latest fetch's history covered; a
                gap at or below it cannot be filled by fetching again, so it
                is announced instead (-1 when no fetch was just resolved).
        """
        if self.phase is Phase.PENDING:
            self._hold(publication, self._before)
        elif publication.epoch == self.epoch:
            if publication.offset <= self.offset:
                return  # a duplicate
            if publication.offset == self.offset + 1 or self.offset < covered_to:
                self._deliver(publication, actions)
            else:  # lost on the way after the last read: history may have it
                self._refetch(actions)
                self._hold(publication, self._before)
        else:  # a new epoch, or a late one of a lost epoch: a state read will tell
            self._refetch(actions)
            self._hold(publication, self._before)

    def _deliver(self, publication: Publication, actions: list[Action]) -> None:
        """Deliver a later message of the current epoch, announcing any gap just before it."""
        if publication.offset > self.offset + 1:
            actions.append(
                Notice(NoticeType.NOT_RECOVERED, self.channel, publication.epoch, publication.offset - 1, Reason.GAP)
            )
        self.offset = publication.offset
        actions.append(publication)

    def _refetch(self, actions: list[Action]) -> None:
        """Fetch again from the current position, holding live messages meanwhile."""
        self.phase = Phase.PENDING
        self._query = RecoveryQuery(self.offset, self.epoch)
        self.refetches += 1
        actions.append(Fetch(self.channel, self._query))

    def _hold(self, publication: Publication, into: deque[Publication]) -> None:
        """Hold a message during a fetch, or drop it once the buffer is full (a refetch gets it back)."""
        size = len(publication.payload)
        count = len(self._before) + len(self._after)
        if self._overflowed or count >= self._max_messages or self._held_bytes + size > self._max_bytes:
            self._overflowed = True
            return
        into.append(publication)
        self._held_bytes += size
