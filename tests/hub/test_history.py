"""The in-process history (wsdaemon.hub.history): offsets, epochs and every bound."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

import wsdaemon.hub.history
from wsdaemon.hub import ChannelState, Fetch, HistoryStore, HubLimits, RecoveryQuery


def store(**limits: int | float) -> HistoryStore:
    """A store whose epochs are e1, e2, ... in creation order."""
    counter = itertools.count(1)
    return HistoryStore(HubLimits(**limits), lambda: f"e{next(counter)}")  # type: ignore[arg-type]


def offsets(history: HistoryStore, channel: str, now: float = 0.0) -> list[int]:
    return [p.offset for p in history.entries_after(channel, 0, now)]


def test_offsets_increase_by_one_per_channel() -> None:
    """Each channel counts its own messages from 1."""
    history = store(history_size=10)
    assert [history.publish("/a", b"x", False, 0).offset for _ in range(3)] == [1, 2, 3]
    assert history.publish("/b", b"x", False, 0).offset == 1
    assert history.publish("/a", b"x", False, 0).offset == 4


def test_each_channel_has_its_own_epoch() -> None:
    """A publication carries its channel's epoch, and channels get distinct epochs."""
    history = store(history_size=10)
    assert history.publish("/a", b"x", False, 0).epoch == "e1"
    assert history.publish("/b", b"x", False, 0).epoch == "e2"


def test_publication_keeps_payload_and_kind() -> None:
    """What is published is what history and subscribers get, text or binary."""
    history = store(history_size=10)
    publication = history.publish("/a", b"\x00\xff", True, 0)
    assert (publication.channel, publication.payload, publication.binary) == ("/a", b"\x00\xff", True)
    assert history.entries_after("/a", 0, 0) == [publication]


def test_history_off_still_gives_offsets() -> None:
    """history_size = 0 keeps nothing, but offsets and epochs still exist (the envelope needs them)."""
    history = store()
    history.publish("/a", b"x", False, 0)
    history.publish("/a", b"x", False, 0)
    assert history.state("/a", 0) == ChannelState("e1", 3, 2)
    assert history.entries_after("/a", 0, 0) == []
    assert history.payload_bytes == 0


def test_state_of_a_new_channel_creates_its_record() -> None:
    """A subscriber of a quiet channel learns its epoch, and the first message keeps it."""
    history = store(history_size=10)
    assert history.state("/a", 0) == ChannelState("e1", 1, 0)
    assert history.publish("/a", b"x", False, 0).epoch == "e1"


def test_ring_bounded_in_messages() -> None:
    """At most history_size messages are kept per channel, the newest."""
    history = store(history_size=3)
    for _ in range(10):
        history.publish("/a", b"x", False, 0)
    assert offsets(history, "/a") == [8, 9, 10]
    assert history.state("/a", 0) == ChannelState("e1", 8, 10)


def test_ring_bounded_in_bytes() -> None:
    """At most history_max_bytes payload bytes are kept per channel."""
    history = store(history_size=100, history_max_bytes=250)
    for _ in range(10):
        history.publish("/a", b"x" * 100, False, 0)
    assert offsets(history, "/a") == [9, 10]
    assert history.payload_bytes == 200


def test_message_too_big_to_keep_empties_the_ring() -> None:
    """A message over history_max_bytes is not kept, and neither are older ones: history never has a hole."""
    history = store(history_size=100, history_max_bytes=250)
    history.publish("/a", b"x", False, 0)
    history.publish("/a", b"x" * 300, False, 0)
    assert history.state("/a", 0) == ChannelState("e1", 3, 2)
    assert history.payload_bytes == 0
    history.publish("/a", b"x", False, 0)
    assert offsets(history, "/a") == [3]


def test_channel_count_bounded_least_recently_published_first() -> None:
    """Creating channels beyond history_max_channels forgets the least recently published ones."""
    history = store(history_size=10, history_max_channels=3)
    for name in ("/a", "/b", "/c"):
        history.publish(name, b"x", False, 0)
    history.publish("/a", b"x", False, 0)  # /a is now the most recent
    history.publish("/d", b"x", False, 0)
    assert len(history) == 3
    assert history.evicted == 1
    assert history.state("/a", 0).epoch == "e1"  # kept
    assert history.state("/b", 0) == ChannelState("e5", 1, 0)  # forgotten: a new epoch, nothing retained


def test_an_attacker_creating_channels_cannot_grow_the_store() -> None:
    """Thousands of channel names never hold more than history_max_channels records or the byte bounds."""
    history = store(history_size=1000, history_max_channels=50, history_total_max_bytes=10_000)
    for n in range(5000):
        history.publish(f"/spam/{n}", b"x" * 100, False, 0)
        assert len(history) <= 50 and history.payload_bytes <= 10_000


def test_total_bytes_bounded_across_channels() -> None:
    """Across channels at most history_total_max_bytes are kept; the least recently published channel's oldest go first."""
    history = store(history_size=100, history_total_max_bytes=1000)
    for _ in range(5):
        history.publish("/old", b"x" * 100, False, 0)
    for _ in range(7):
        history.publish("/new", b"x" * 100, False, 1)
    assert history.payload_bytes == 1000
    assert history.state("/new", 1).retained == 7
    assert history.state("/old", 1) == ChannelState("e1", 3, 5)  # its position and epoch stay


def test_total_bytes_trims_a_lone_channel() -> None:
    """When one channel alone exceeds the total bound, its own oldest messages go."""
    history = store(history_size=100, history_max_bytes=10_000, history_total_max_bytes=1000)
    for _ in range(15):
        history.publish("/a", b"x" * 100, False, 0)
    assert offsets(history, "/a") == list(range(6, 16))


def test_idle_channel_drops_its_messages_after_ttl() -> None:
    """A channel with no publish for history_ttl_seconds drops its messages but keeps its epoch and offsets."""
    history = store(history_size=10, history_ttl_seconds=60)
    history.publish("/a", b"x", False, 0)
    history.publish("/a", b"x", False, 30)
    assert history.state("/a", 89.9).retained == 2
    assert history.expire(90) == 1
    assert history.payload_bytes == 0
    assert history.state("/a", 90) == ChannelState("e1", 3, 2)  # a client at 2 misses nothing; one at 1 expired
    publication = history.publish("/a", b"x", False, 91)
    assert (publication.epoch, publication.offset) == ("e1", 3)


def test_expiry_happens_on_any_call() -> None:
    """Every call drops what expired first, so idle history does not pile up without a timer."""
    history = store(history_size=10, history_ttl_seconds=60)
    history.publish("/a", b"x" * 10, False, 0)
    history.publish("/b", b"x", False, 100)
    assert history.payload_bytes == 1
    assert history.expire(100) == 0


def test_publishing_keeps_a_channel_alive() -> None:
    """The TTL counts from the last publish."""
    history = store(history_size=10, history_ttl_seconds=60)
    for now in range(0, 600, 50):
        history.publish("/a", b"x", False, now)
    assert history.state("/a", 600).retained == 10


def test_reading_state_counts_as_use_for_the_channel_bound() -> None:
    """A channel whose members keep subscribing is not the first forgotten, even if quiet."""
    history = store(history_max_channels=2)
    history.state("/quiet", 0)
    history.publish("/busy", b"x", False, 0)
    history.state("/quiet", 1)
    history.publish("/new", b"x", False, 2)
    assert history.state("/quiet", 2).epoch == "e1"
    assert history.evicted == 1


def test_entries_after() -> None:
    """entries_after gives the retained messages above an offset, oldest first."""
    history = store(history_size=5)
    for _ in range(8):
        history.publish("/a", b"x", False, 0)
    assert [p.offset for p in history.entries_after("/a", 6, 0)] == [7, 8]
    assert [p.offset for p in history.entries_after("/a", 2, 0)] == [4, 5, 6, 7, 8]
    assert history.entries_after("/a", 8, 0) == []
    assert history.entries_after("/a", 100, 0) == []


def test_answer_a_fetch() -> None:
    """A Subscription's Fetch is answered with the state and just the entries its decision replays."""
    history = store(history_size=5)
    for _ in range(8):
        history.publish("/a", b"x", False, 0)
    state, entries = history.answer(Fetch("/a", RecoveryQuery(6, "e1")), 0)
    assert state == ChannelState("e1", 4, 8) and [p.offset for p in entries] == [7, 8]
    state, entries = history.answer(Fetch("/a", RecoveryQuery(1, "e1")), 0)
    assert [p.offset for p in entries] == [4, 5, 6, 7, 8]  # not recovered: everything retained
    state, entries = history.answer(Fetch("/a", RecoveryQuery(6, "gone")), 0)
    assert [p.offset for p in entries] == [4, 5, 6, 7, 8]
    state, entries = history.answer(Fetch("/a", None), 0)
    assert entries == []


def test_offset_limit_starts_a_new_epoch(monkeypatch: pytest.MonkeyPatch) -> None:
    """A channel that reaches the largest offset starts over at 1 in a new epoch, never past 2**53 - 1."""
    monkeypatch.setattr(wsdaemon.hub.history, "MAX_OFFSET", 3)
    history = store(history_size=10)
    published = [history.publish("/a", b"x", False, 0) for _ in range(5)]
    assert [(p.epoch, p.offset) for p in published] == [("e1", 1), ("e1", 2), ("e1", 3), ("e2", 1), ("e2", 2)]


def test_malformed_epoch_from_the_generator_is_refused() -> None:
    """A new_epoch that returns something unusable in a URL fails loudly at once."""
    history = HistoryStore(HubLimits(), lambda: "a b")
    with pytest.raises(ValueError, match="malformed epoch"):
        history.publish("/a", b"x", False, 0)


@given(
    st.lists(st.tuples(st.sampled_from(["/a", "/b", "/c", "/d"]), st.integers(0, 300), st.integers(0, 5)), max_size=80),
    st.integers(0, 8),
    st.integers(0, 1000),
    st.integers(1, 3),
    st.integers(0, 1500),
)
def test_bounds_always_hold_and_history_is_a_contiguous_suffix(
    steps: list[tuple[str, int, int]], size: int, max_bytes: int, channels: int, total: int
) -> None:
    """Under any publishes, every bound holds and each channel retains a run of its newest offsets, no hole."""
    history = store(
        history_size=size,
        history_max_bytes=max_bytes,
        history_max_channels=channels,
        history_total_max_bytes=total,
        history_ttl_seconds=10,
    )
    now = 0
    for channel, length, wait in steps:
        now += wait
        publication = history.publish(channel, b"x" * length, False, now)
        assert len(history) <= channels and history.payload_bytes <= total
        state = history.state(channel, now)
        assert state.last_offset == publication.offset
        kept = history.entries_after(channel, 0, now)
        assert [p.offset for p in kept] == list(range(state.first_offset, state.last_offset + 1))
        assert len(kept) <= size and sum(len(p.payload) for p in kept) <= max_bytes


def test_hand_over_keeps_the_position_and_trims_to_the_new_bounds() -> None:
    """A record handed to another store keeps its epoch and offsets; messages beyond the new bounds go."""
    old, new = store(history_size=5), store(history_size=2)
    for index in range(4):
        old.publish("c", f"m{index}".encode(), False, 0.0)
    old.hand_over("c", new, 1.0)
    assert "c" not in old and "c" in new
    assert old.payload_bytes == 0
    assert new.state("c", 1.0) == ChannelState("e1", 3, 4)
    assert offsets(new, "c", 1.0) == [3, 4] and new.payload_bytes == 4
    assert new.publish("c", b"m4", False, 1.0).offset == 5


def test_hand_over_of_a_record_past_its_ttl_keeps_only_the_position() -> None:
    """Messages that the new store's TTL says are idle too long are dropped on arrival; the epoch stays."""
    old, new = store(history_size=5, history_ttl_seconds=100.0), store(history_size=5, history_ttl_seconds=10.0)
    old.publish("c", b"m", False, 0.0)
    old.hand_over("c", new, 50.0)
    assert new.state("c", 50.0) == ChannelState("e1", 2, 1)
    assert new.payload_bytes == 0
