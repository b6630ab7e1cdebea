"""The in-process broker's positioned publishes and history (wsdaemon.broker.local), on a fake clock."""

from __future__ import annotations

import itertools

from twisted.internet.task import Clock

from tests.broker.members import Plain, Positioned
from wsdaemon.broker import InProcessBroker, Route
from wsdaemon.core.frames import Opcode, SharedMessage
from wsdaemon.hub import ChannelState, Fetch, HubLimits, Publication, RecoveryQuery, is_epoch

LIMITS = HubLimits(history_size=3, history_ttl_seconds=10.0)


def epochs():
    """Deterministic epochs: e1, e2, ..."""
    counter = itertools.count(1)
    return lambda: f"e{next(counter)}"


def text(value: str) -> SharedMessage:
    return SharedMessage(Opcode.TEXT, value.encode())


def result(deferred):
    """The value a Deferred already fired with (the in-process broker answers synchronously)."""
    box: list[object] = []
    deferred.addBoth(box.append)
    assert box, "the Deferred has not fired"
    return box[0]


def broker(clock: Clock | None = None) -> InProcessBroker:
    return InProcessBroker(clock or Clock(), epochs())


def test_a_positioned_publish_answers_its_epoch_and_offset():
    """Offsets go 1, 2, 3 per channel, each channel with its own epoch; the answer says where the message went."""
    b = broker()
    answers = [result(b.publish("/a", text(str(n)), history=LIMITS)) for n in range(3)]
    other = result(b.publish("/b", text("x"), history=LIMITS))
    assert [(a.epoch, a.offset, a.route) for a in answers] == [
        ("e1", 1, Route.LOCAL),
        ("e1", 2, Route.LOCAL),
        ("e1", 3, Route.LOCAL),
    ]
    assert (other.epoch, other.offset) == ("e2", 1)
    assert answers[0].size_bytes == 1 and not answers[0].binary


def test_a_plain_publish_has_no_position():
    """Without history= nothing is kept and the answer has no epoch or offset."""
    b = broker()
    answer = result(b.publish("/a", text("x")))
    assert (answer.epoch, answer.offset) == (None, None)
    state, entries = result(b.history("/a", Fetch("/a", RecoveryQuery(0, None)), LIMITS))
    assert state.last_offset == 0 and entries == []


def test_history_members_get_one_shared_publication_and_plain_members_the_message():
    """One Publication per message for every history member; plain members get the SharedMessage as before."""
    b = broker()
    first, second, plain = Positioned(), Positioned(), Plain()
    for member in (first, second, plain):
        b.subscribe("/a", member)
    message = SharedMessage(Opcode.BINARY, b"\x00\x01")
    b.publish("/a", message, history=LIMITS)
    assert first.publications == [Publication("/a", "e1", 1, b"\x00\x01", binary=True)]
    assert first.publications[0] is second.publications[0]
    assert plain.messages == [message] and first.messages == []


def test_exclude_skips_the_sender_of_a_positioned_publish():
    """The excluded member gets nothing; the others get the message with its position."""
    b = broker()
    sender, other = Positioned(), Positioned()
    b.subscribe("/a", sender)
    b.subscribe("/a", other)
    b.publish("/a", text("x"), exclude=sender, history=LIMITS)
    assert sender.publications == [] and [p.offset for p in other.publications] == [1]


def test_history_answers_what_a_reconnecting_client_missed():
    """A fetch from offset 1 gets 2 and 3, read together with the state."""
    b = broker()
    for n in range(3):
        b.publish("/a", text(str(n)), history=LIMITS)
    state, entries = result(b.history("/a", Fetch("/a", RecoveryQuery(1, "e1")), LIMITS))
    assert state == ChannelState("e1", 1, 3)
    assert [(p.offset, p.payload) for p in entries] == [(2, b"1"), (3, b"2")]


def test_history_is_bounded_by_history_size():
    """Five publishes with history_size 3: offsets 3..5 are kept, the state says so."""
    b = broker()
    for n in range(5):
        b.publish("/a", text(str(n)), history=LIMITS)
    state, entries = result(b.history("/a", Fetch("/a", RecoveryQuery(0, None)), LIMITS))
    assert state == ChannelState("e1", 3, 5) and [p.offset for p in entries] == [3, 4, 5]


def test_a_channel_never_published_on_gets_an_epoch_at_offset_zero():
    """Reading an unknown channel creates its record (the subscriber learns its epoch), as the hub does."""
    state, entries = result(broker().history("/new", Fetch("/new", None), LIMITS))
    assert state == ChannelState("e1", 1, 0) and entries == []


def test_history_size_zero_still_gives_offsets():
    """History off keeps nothing, yet every message is positioned."""
    off = HubLimits(history_size=0)
    b = broker()
    answers = [result(b.publish("/a", text("x"), history=off)).offset for _ in range(2)]
    state, entries = result(b.history("/a", Fetch("/a", RecoveryQuery(0, "e1")), off))
    assert answers == [1, 2] and state == ChannelState("e1", 3, 2) and entries == []


def test_endpoints_with_other_bounds_have_their_own_store():
    """Two sets of bounds, two stores: each keeps its channels within its own history_size."""
    b = broker()
    small = HubLimits(history_size=1)
    for n in range(3):
        b.publish("/small", text(str(n)), history=small)
        b.publish("/big", text(str(n)), history=LIMITS)
    assert len(b.history_stores.stores) == 2
    _, kept_small = result(b.history("/small", Fetch("/small", RecoveryQuery(0, None)), small))
    _, kept_big = result(b.history("/big", Fetch("/big", RecoveryQuery(0, None)), LIMITS))
    assert [p.offset for p in kept_small] == [3] and [p.offset for p in kept_big] == [1, 2, 3]


def test_the_expiry_timer_drops_idle_history_without_any_request():
    """After start(), history idle for history_ttl_seconds is dropped by the timer; stop() ends the timer."""
    clock = Clock()
    b = broker(clock)
    b.start()
    b.publish("/a", text("x"), history=LIMITS)
    store = b.history_stores.store(LIMITS)
    clock.advance(LIMITS.history_ttl_seconds - 1)
    assert store.payload_bytes == 1
    clock.advance(2)
    assert store.payload_bytes == 0
    result(b.stop())
    assert clock.getDelayedCalls() == []


def test_idle_history_is_gone_but_the_position_goes_on():
    """Expired messages are not replayed; the epoch and the offsets continue (the client is told 'expired')."""
    clock = Clock()
    b = broker(clock)
    b.publish("/a", text("x"), history=LIMITS)
    clock.advance(LIMITS.history_ttl_seconds + 1)
    state, entries = result(b.history("/a", Fetch("/a", RecoveryQuery(0, "e1")), LIMITS))
    assert state == ChannelState("e1", 2, 1) and entries == []
    assert result(b.publish("/a", text("y"), history=LIMITS)).offset == 2


def test_a_restarted_daemon_starts_a_new_epoch():
    """A new broker (a restart) uses real randomness: its epochs differ from the last run's."""
    before = result(InProcessBroker(Clock()).publish("/a", text("x"), history=LIMITS))
    after = result(InProcessBroker(Clock()).publish("/a", text("x"), history=LIMITS))
    assert is_epoch(before.epoch) and is_epoch(after.epoch) and before.epoch != after.epoch
    assert before.offset == after.offset == 1
