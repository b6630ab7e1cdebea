"""The recovery query of a reconnecting client, and the decision it gets.

Rules for this file:

* A client reconnects to its channel's URL with ``?since=OFFSET&epoch=EPOCH``:
  the position of the last message it received. Other query parameters (an
  auth token, say) are left to others.
* :func:`parse_recovery_query` judges only the *syntax* and answers every
  malformed query with :class:`~wsdaemon.hub.errors.InvalidRecoveryQuery`
  (HTTP 400 at the handshake), never with another exception:

  ===============================================  ==================================================
  query                                             answer
  ===============================================  ==================================================
  neither ``since`` nor ``epoch``                   ``None``: a plain subscription (``subscribed``)
  ``since=N&epoch=E``                               ``RecoveryQuery(N, E)``, for :func:`decide`
  ``since=N`` without ``epoch``                     ``RecoveryQuery(N, None)``: not recovered, ``no_epoch``
  ``epoch`` without ``since``                       400 ``since: missing (epoch needs since)``
  ``since`` empty or not decimal digits             400 ``since: not a non-negative integer``
  (``abc``, ``1.5``, ``+1``, ``1e3``, `` 1``,
  ``0x1``, ``1_000``, non-ASCII digits)
  ``since`` negative (``-1``)                       400 ``since: negative``
  ``since`` over 2**53 - 1 (or over 16 digits)      400 ``since: too large``
  ``epoch`` empty, over 64 characters, or with a    400 ``epoch: malformed``
  character outside ``A-Za-z0-9_.-``
  ``since`` or ``epoch`` given twice                400 ``since: repeated`` / ``epoch: repeated``
  ===============================================  ==================================================

* :func:`decide` judges the *meaning* against the channel's
  :class:`~wsdaemon.hub.positions.ChannelState` and never fails: a foreign
  epoch, an offset that fell out of history or one beyond the last offset
  gives ``not_recovered`` (with the reason), and the stream then continues
  with every message still retained, so the client loses as little as
  possible and needs no second request to reload recent history.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qsl

from wsdaemon.hub.envelope import Notice, NoticeType, Reason
from wsdaemon.hub.errors import InvalidRecoveryQuery
from wsdaemon.hub.positions import MAX_OFFSET, ChannelState, is_epoch

#: Most decimal digits ``since`` may have (2**53 - 1 has 16), checked before converting.
MAX_SINCE_DIGITS = 16

_DIGITS = re.compile(r"[0-9]+", re.ASCII)


@dataclass(frozen=True, slots=True)
class RecoveryQuery:
    """A reconnecting client's position: the last message it received.

    Attributes:
        since: the offset of the last message received (0: none of ``epoch``).
        epoch: that message's epoch, or ``None`` when the client has none.
    """

    since: int
    epoch: str | None


def parse_recovery_query(query: str | bytes) -> RecoveryQuery | None:
    """The recovery request in a URL query string, if any (see the table above).

    Args:
        query: the query string without ``?`` (twisted.web:
            ``request.uri.partition(b"?")[2]``); percent-escapes and ``+`` are
            decoded as in any form query.

    Returns:
        ``None`` when the client asks for no recovery, else its position.

    Raises:
        InvalidRecoveryQuery: the query is malformed (HTTP 400).
    """
    text = query.decode("latin-1") if isinstance(query, bytes) else query
    values: dict[str, list[str]] = {"since": [], "epoch": []}
    for name, value in parse_qsl(text, keep_blank_values=True, encoding="utf-8", errors="replace"):
        if name in values:
            values[name].append(value)
    for name, found in values.items():
        if len(found) > 1:
            raise InvalidRecoveryQuery(name, "repeated")
    since, epoch = values["since"], values["epoch"]
    if not since:
        if epoch:
            raise InvalidRecoveryQuery("since", "missing (epoch needs since)")
        return None
    return RecoveryQuery(_parse_since(since[0]), _parse_epoch(epoch[0]) if epoch else None)


def _parse_since(value: str) -> int:
    """The offset in a ``since`` value, judged before ``int()`` sees it (no 4300-digit surprise)."""
    if value.startswith("-") and _DIGITS.fullmatch(value[1:]):
        raise InvalidRecoveryQuery("since", "negative")
    if not _DIGITS.fullmatch(value):
        raise InvalidRecoveryQuery("since", "not a non-negative integer")
    if len(value.lstrip("0")) > MAX_SINCE_DIGITS or int(value) > MAX_OFFSET:
        raise InvalidRecoveryQuery("since", "too large")
    return int(value)


def _parse_epoch(value: str) -> str:
    if not is_epoch(value):
        raise InvalidRecoveryQuery("epoch", "malformed (1 to 64 characters of A-Z a-z 0-9 _ . -)")
    return value


@dataclass(frozen=True, slots=True)
class Decision:
    """What a subscriber gets: replay the messages after ``offset`` up to ``last_offset``, then go live.

    Attributes:
        outcome: the notice type to send first.
        epoch: the channel's epoch.
        offset: the stream continues after this offset (the client's
            ``since`` when recovered; the offset before the oldest retained
            message when not; the last offset for a plain subscription).
        last_offset: the channel's last offset when the decision was made.
        reason: why not recovered (``None`` otherwise).
    """

    outcome: NoticeType
    epoch: str
    offset: int
    last_offset: int
    reason: Reason | None = None

    @property
    def replay(self) -> range:
        """The offsets to replay from history, oldest first (empty for a plain subscription)."""
        return range(self.offset + 1, self.last_offset + 1)

    def notice(self, channel: str) -> Notice:
        """The notice announcing this decision to the client."""
        return Notice(self.outcome, channel, self.epoch, self.offset, self.reason)


def decide(query: RecoveryQuery | None, state: ChannelState) -> Decision:
    """The recovery decision for ``query`` against the channel's ``state``; never raises.

    Args:
        query: the client's position, or ``None`` for a plain subscription.
        state: the channel's epoch and retained offsets, read *after* the
            subscriber was registered for live messages.

    Returns:
        ``recovered`` (replay ``since+1 .. last``) when the epoch matches and
        every message after ``since`` is still retained; ``subscribed`` (no
        replay) without a query; otherwise ``not_recovered`` with its reason
        and a replay of everything retained.
    """
    epoch, first, last = state.epoch, state.first_offset, state.last_offset
    if query is None:
        return Decision(NoticeType.SUBSCRIBED, epoch, last, last)
    if query.epoch is None:
        reason = Reason.NO_EPOCH
    elif query.epoch != epoch:
        reason = Reason.EPOCH_CHANGED
    elif query.since > last:
        reason = Reason.AHEAD
    elif query.since < first - 1:
        reason = Reason.EXPIRED
    else:
        return Decision(NoticeType.RECOVERED, epoch, query.since, last)
    return Decision(NoticeType.NOT_RECOVERED, epoch, first - 1, last, reason)
