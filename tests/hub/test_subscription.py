"""The history/live switch (wsdaemon.hub.subscription): no gap, no duplicate, by plain calls."""

from __future__ import annotations

import pytest

from wsdaemon.hub import (
    ChannelState,
    Fetch,
    HubLimits,
    Notice,
    NoticeType,
    Phase,
    Publication,
    Reason,
    RecoveryQuery,
    Subscription,
)

E = "e1"
LIMITS = HubLimits(replay_buffer_max_messages=3)


def pub(offset: int, epoch: str = E, size: int = 1) -> Publication:
    return Publication("/c", epoch, offset, b"x" * size)


def pubs(first: int, last: int, epoch: str = E) -> list[Publication]:
    return [pub(n, epoch) for n in range(first, last + 1)]


def notice(outcome: NoticeType, offset: int, reason: Reason | None = None, epoch: str = E) -> Notice:
    return Notice(outcome, "/c", epoch, offset, reason)


def subscribed(query: RecoveryQuery | None = None, limits: HubLimits = LIMITS) -> Subscription:
    subscription = Subscription("/c", query, limits)
    assert subscription.start() == Fetch("/c", query)
    return subscription


def test_plain_subscription_gets_its_position_then_live() -> None:
    """Without a query the member learns the channel's position, then gets live messages."""
    subscription = subscribed()
    assert subscription.resolve(ChannelState(E, 1, 5), []) == [notice(NoticeType.SUBSCRIBED, 5)]
    assert subscription.phase is Phase.LIVE
    assert subscription.live(pub(6)) == [pub(6)]
    assert subscription.live(pub(7)) == [pub(7)]


def test_recovery_replays_then_goes_live() -> None:
    """A client at offset 3 gets 'recovered', then 4..5 from history, then live 6."""
    subscription = subscribed(RecoveryQuery(3, E))
    assert subscription.resolve(ChannelState(E, 1, 5), pubs(4, 5)) == [notice(NoticeType.RECOVERED, 3), *pubs(4, 5)]
    assert subscription.live(pub(6)) == [pub(6)]


def test_live_messages_during_an_async_replay_are_merged_without_duplicates() -> None:
    """Live messages that arrive before the history (Redis) wait, and those the history also had are skipped."""
    subscription = subscribed(RecoveryQuery(3, E), HubLimits())
    assert subscription.live(pub(6)) == []  # published after subscribing, before the history was read
    assert subscription.live(pub(7)) == []  # published after the history was read
    actions = subscription.resolve(ChannelState(E, 1, 6), pubs(4, 6))
    assert actions == [notice(NoticeType.RECOVERED, 3), *pubs(4, 7)]
    assert subscription.live(pub(7)) == []  # a late duplicate
    assert subscription.live(pub(8)) == [pub(8)]


def test_entries_beyond_the_request_are_skipped() -> None:
    """History entries the client already has (a generous reader) are not sent again."""
    subscription = subscribed(RecoveryQuery(3, E))
    assert subscription.resolve(ChannelState(E, 1, 5), pubs(1, 5)) == [notice(NoticeType.RECOVERED, 3), *pubs(4, 5)]


def test_not_recovered_announces_then_replays_what_is_retained() -> None:
    """An offset out of history gives 'not_recovered' (expired) at the oldest retained message, then those."""
    subscription = subscribed(RecoveryQuery(2, E))
    actions = subscription.resolve(ChannelState(E, 5, 6), pubs(5, 6))
    assert actions == [notice(NoticeType.NOT_RECOVERED, 4, Reason.EXPIRED), *pubs(5, 6)]


def test_epoch_changed_drops_live_messages_of_the_old_epoch() -> None:
    """After a history loss the client gets the new epoch's messages only; stale ones buffered before are dropped."""
    subscription = subscribed(RecoveryQuery(9, "old"), HubLimits())
    subscription.live(pub(10, "old"))  # published just before the loss
    subscription.live(pub(1, "new"))
    subscription.live(pub(2, "new"))
    actions = subscription.resolve(ChannelState("new", 1, 1), pubs(1, 1, "new"))
    assert actions == [notice(NoticeType.NOT_RECOVERED, 0, Reason.EPOCH_CHANGED, "new"), pub(1, "new"), pub(2, "new")]


def test_live_duplicate_is_dropped() -> None:
    """A message delivered twice by the broker reaches the client once."""
    subscription = subscribed()
    subscription.resolve(ChannelState(E, 1, 0), [])
    assert subscription.live(pub(1)) == [pub(1)]
    assert subscription.live(pub(1)) == []


def test_live_gap_fetches_again_and_fills_seamlessly() -> None:
    """A message lost on the way (broker link) is fetched from history with no notice: the client sees no gap."""
    subscription = subscribed()
    subscription.resolve(ChannelState(E, 1, 1), [])
    assert subscription.live(pub(2)) == [pub(2)]
    assert subscription.live(pub(4)) == [Fetch("/c", RecoveryQuery(2, E))]
    assert subscription.live(pub(5)) == []
    assert subscription.refetches == 1
    assert subscription.resolve(ChannelState(E, 1, 4), pubs(3, 4)) == pubs(3, 5)


def test_gap_history_cannot_fill_is_announced() -> None:
    """When history no longer has what was lost, 'not_recovered' says so before the next message."""
    subscription = subscribed()
    subscription.resolve(ChannelState(E, 1, 2), [])
    subscription.live(pub(5))
    actions = subscription.resolve(ChannelState(E, 4, 5), pubs(4, 5))
    assert actions == [notice(NoticeType.NOT_RECOVERED, 3, Reason.EXPIRED), *pubs(4, 5)]


def test_hole_in_history_is_announced_not_retried() -> None:
    """A history with a hole (a broker bug) gives a 'gap' notice before the message after it, once."""
    subscription = subscribed(RecoveryQuery(1, E))
    actions = subscription.resolve(ChannelState(E, 1, 4), [pub(2), pub(4)])
    assert actions == [notice(NoticeType.RECOVERED, 1), pub(2), notice(NoticeType.NOT_RECOVERED, 3, Reason.GAP), pub(4)]


def test_short_history_then_buffered_gap_is_announced() -> None:
    """A reader that returns less than its state promised cannot make the subscription loop: the gap is announced."""
    subscription = subscribed(RecoveryQuery(1, E), HubLimits())
    subscription.live(pub(6))
    actions = subscription.resolve(ChannelState(E, 1, 5), [pub(2)])
    assert actions == [notice(NoticeType.RECOVERED, 1), pub(2), notice(NoticeType.NOT_RECOVERED, 5, Reason.GAP), pub(6)]
    assert subscription.phase is Phase.LIVE


def test_buffered_gap_above_the_read_fetches_again() -> None:
    """A gap among live messages published after the history was read is fetched, not announced."""
    subscription = subscribed(RecoveryQuery(1, E), HubLimits())
    subscription.live(pub(3))
    subscription.live(pub(5))  # 4 was lost on the way
    actions = subscription.resolve(ChannelState(E, 1, 2), [pub(2)])
    assert actions == [notice(NoticeType.RECOVERED, 1), pub(2), pub(3), Fetch("/c", RecoveryQuery(3, E))]
    assert subscription.resolve(ChannelState(E, 1, 5), pubs(4, 5)) == pubs(4, 5)


def test_buffer_overflow_fetches_again_from_where_it_got() -> None:
    """A replay buffer that fills drops later live messages, then fetches them from history: still no gap."""
    subscription = subscribed(RecoveryQuery(0, E))
    for offset in range(3, 9):
        assert subscription.live(pub(offset)) == []
    actions = subscription.resolve(ChannelState(E, 1, 2), pubs(1, 2))
    assert actions == [notice(NoticeType.RECOVERED, 0), *pubs(1, 5), Fetch("/c", RecoveryQuery(5, E))]
    assert subscription.live(pub(9)) == []
    assert subscription.resolve(ChannelState(E, 1, 8), pubs(6, 8)) == pubs(6, 9)


def test_buffer_is_bounded_in_bytes() -> None:
    """replay_buffer_max_bytes bounds what waits, whatever the message count."""
    subscription = subscribed(RecoveryQuery(0, E), HubLimits(replay_buffer_max_bytes=1024))
    subscription.live(pub(1, size=1000))
    subscription.live(pub(2, size=1000))  # over the byte bound: dropped, fetched again later
    subscription.live(pub(3, size=1))  # fits, but after a drop it would leave a hole: dropped too
    actions = subscription.resolve(ChannelState(E, 1, 0), [])
    assert actions == [notice(NoticeType.RECOVERED, 0), pub(1, size=1000), Fetch("/c", RecoveryQuery(1, E))]


def test_new_epoch_seen_live_is_fetched_and_announced() -> None:
    """When the channel's history is lost while a member is connected, it is told (epoch_changed), then follows."""
    subscription = subscribed()
    subscription.resolve(ChannelState(E, 1, 7), [])
    assert subscription.live(pub(1, "new")) == [Fetch("/c", RecoveryQuery(7, E))]
    actions = subscription.resolve(ChannelState("new", 1, 1), pubs(1, 1, "new"))
    assert actions == [notice(NoticeType.NOT_RECOVERED, 0, Reason.EPOCH_CHANGED, "new"), pub(1, "new")]
    assert (subscription.epoch, subscription.offset) == ("new", 1)


def test_new_epoch_whose_start_was_missed_is_fetched() -> None:
    """A new epoch seen mid-way (its first messages lost) is fetched whole after the notice."""
    subscription = subscribed()
    subscription.resolve(ChannelState(E, 1, 7), [])
    assert subscription.live(pub(3, "new")) == [Fetch("/c", RecoveryQuery(7, E))]
    actions = subscription.resolve(ChannelState("new", 1, 3), pubs(1, 3, "new"))
    assert actions == [notice(NoticeType.NOT_RECOVERED, 0, Reason.EPOCH_CHANGED, "new"), *pubs(1, 3, "new")]


def test_late_message_of_an_old_epoch_is_dropped() -> None:
    """A message of a lost epoch that arrives after the fetch (it overtook nothing) is checked and dropped."""
    subscription = subscribed()
    subscription.resolve(ChannelState("new", 1, 2), [])
    assert subscription.live(pub(9, "old")) == [Fetch("/c", RecoveryQuery(2, "new"))]
    assert subscription.live(pub(3, "new")) == []
    assert subscription.resolve(ChannelState("new", 1, 3), pubs(3, 3, "new")) == [pub(3, "new")]


def test_late_old_epoch_message_is_settled_by_one_read() -> None:
    """A late message of a lost epoch costs one read, not a loop: received before that read, it is stale."""
    subscription = subscribed()
    subscription.resolve(ChannelState("new", 1, 2), [])
    assert subscription.live(pub(9, "old")) == [Fetch("/c", RecoveryQuery(2, "new"))]
    assert subscription.resolve(ChannelState("new", 1, 2), []) == []
    assert subscription.phase is Phase.LIVE


def test_other_epoch_arriving_during_a_fetch_is_read_again() -> None:
    """Only messages of another epoch since the fetch: old or new cannot be told apart, so the state is read again."""
    subscription = subscribed(None, HubLimits())
    subscription.live(pub(1, "new"))  # the read below happened just before "new" began
    assert subscription.resolve(ChannelState(E, 1, 4), []) == [
        notice(NoticeType.SUBSCRIBED, 4),
        Fetch("/c", RecoveryQuery(4, E)),
    ]
    assert subscription.resolve(ChannelState("new", 1, 1), pubs(1, 1, "new")) == [
        notice(NoticeType.NOT_RECOVERED, 0, Reason.EPOCH_CHANGED, "new"),
        pub(1, "new"),
    ]
    stale = subscribed(None, HubLimits())
    stale.live(pub(9, "old"))  # published before the read's epoch began, delivered late
    assert stale.resolve(ChannelState(E, 1, 4), []) == [
        notice(NoticeType.SUBSCRIBED, 4),
        Fetch("/c", RecoveryQuery(4, E)),
    ]
    assert stale.resolve(ChannelState(E, 1, 4), []) == []


def test_newer_epoch_in_the_buffer_is_fetched() -> None:
    """Buffered messages of an epoch that began after the read are not taken blindly: the state is read again."""
    subscription = subscribed(None, HubLimits())
    subscription.live(pub(3))
    subscription.live(pub(1, "new"))
    subscription.live(pub(2, "new"))
    actions = subscription.resolve(ChannelState(E, 1, 2), [])
    assert actions == [notice(NoticeType.SUBSCRIBED, 2), pub(3), Fetch("/c", RecoveryQuery(3, E))]
    assert subscription.resolve(ChannelState("new", 1, 2), pubs(1, 2, "new")) == [
        notice(NoticeType.NOT_RECOVERED, 0, Reason.EPOCH_CHANGED, "new"),
        *pubs(1, 2, "new"),
    ]


def test_entries_of_another_epoch_are_ignored() -> None:
    """A reader mixing epochs cannot make the client take foreign offsets."""
    subscription = subscribed(RecoveryQuery(1, E))
    assert subscription.resolve(ChannelState(E, 1, 2), [pub(2, "x"), pub(2)]) == [
        notice(NoticeType.RECOVERED, 1),
        pub(2),
    ]


def test_no_epoch_query_gets_all_retained() -> None:
    """since without epoch (a first visit asking for recent history) gets 'no_epoch' and every retained message."""
    subscription = subscribed(RecoveryQuery(0, None))
    actions = subscription.resolve(ChannelState(E, 3, 4), pubs(3, 4))
    assert actions == [notice(NoticeType.NOT_RECOVERED, 2, Reason.NO_EPOCH), *pubs(3, 4)]


def test_resolve_without_a_fetch_is_a_caller_bug() -> None:
    """Resolving twice is refused loudly rather than replaying twice."""
    subscription = subscribed()
    subscription.resolve(ChannelState(E, 1, 0), [])
    with pytest.raises(RuntimeError, match="without an outstanding fetch"):
        subscription.resolve(ChannelState(E, 1, 0), [])


def test_fetch_after_matches_the_decision() -> None:
    """Fetch.after tells a reader which entries to read: exactly what the decision will replay."""
    state = ChannelState(E, 5, 9)
    assert Fetch("/c", RecoveryQuery(7, E)).after(state) == 7
    assert Fetch("/c", RecoveryQuery(2, E)).after(state) == 4
    assert Fetch("/c", RecoveryQuery(7, "other")).after(state) == 4
    assert Fetch("/c", None).after(state) == 9


def test_heartbeat_repeats_the_position() -> None:
    """A heartbeat tells a browser the link is alive and where it is; none while the position is unsettled."""
    subscription = subscribed()
    assert subscription.heartbeat() is None
    subscription.resolve(ChannelState(E, 1, 4), [])
    assert subscription.heartbeat() == notice(NoticeType.HEARTBEAT, 4)
    subscription.live(pub(5))
    assert subscription.heartbeat() == notice(NoticeType.HEARTBEAT, 5)
    subscription.live(pub(7))  # a gap: fetching again
    assert subscription.heartbeat() is None
