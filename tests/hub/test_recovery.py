"""The reconnect query and the recovery decision (wsdaemon.hub.recovery)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wsdaemon.hub import (
    MAX_OFFSET,
    ChannelState,
    InvalidRecoveryQuery,
    Notice,
    NoticeType,
    Reason,
    RecoveryQuery,
    decide,
    parse_recovery_query,
)

EPOCH = "6743a1f0-0001020304050607"

# --- parsing ---------------------------------------------------------------------------------


@pytest.mark.parametrize("query", ["", "token=abc", "Since=3", "x=1&y=2", b"", b"token=%ff"])
def test_no_recovery_asked(query: str | bytes) -> None:
    """Without since and epoch (other parameters ignored, names are case-sensitive) the client just subscribes."""
    assert parse_recovery_query(query) is None


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (f"since=42&epoch={EPOCH}", RecoveryQuery(42, EPOCH)),
        (f"epoch={EPOCH}&since=42", RecoveryQuery(42, EPOCH)),
        (f"token=x&since=0&epoch={EPOCH}", RecoveryQuery(0, EPOCH)),
        ("since=007&epoch=e", RecoveryQuery(7, "e")),
        (f"since={MAX_OFFSET}&epoch=e", RecoveryQuery(MAX_OFFSET, "e")),
        ("since=%34%32&epoch=e", RecoveryQuery(42, "e")),
        ("since=5", RecoveryQuery(5, None)),
        (b"since=5&epoch=e", RecoveryQuery(5, "e")),
    ],
)
def test_well_formed_queries(query: str | bytes, expected: RecoveryQuery) -> None:
    """since and epoch give the client's position, in either order, percent-escapes decoded."""
    assert parse_recovery_query(query) == expected


@pytest.mark.parametrize(
    ("query", "field", "problem"),
    [
        ("epoch=e", "since", "missing (epoch needs since)"),
        ("since=&epoch=e", "since", "not a non-negative integer"),
        ("since&epoch=e", "since", "not a non-negative integer"),
        ("since=abc&epoch=e", "since", "not a non-negative integer"),
        ("since=1.5&epoch=e", "since", "not a non-negative integer"),
        ("since=1e3&epoch=e", "since", "not a non-negative integer"),
        ("since=%2B1&epoch=e", "since", "not a non-negative integer"),
        ("since=+1&epoch=e", "since", "not a non-negative integer"),  # '+' is a space in a query
        ("since=%201&epoch=e", "since", "not a non-negative integer"),
        ("since=0x10&epoch=e", "since", "not a non-negative integer"),
        ("since=1_000&epoch=e", "since", "not a non-negative integer"),
        (
            "since=%D9%A3&epoch=e",
            "since",
            "not a non-negative integer",
        ),  # ARABIC-INDIC DIGIT THREE: int() would take it
        ("since=%FF&epoch=e", "since", "not a non-negative integer"),
        ("since=--1&epoch=e", "since", "not a non-negative integer"),
        ("since=-1&epoch=e", "since", "negative"),
        ("since=-0&epoch=e", "since", "negative"),
        ("since=-99999999999999999999&epoch=e", "since", "negative"),
        (f"since={MAX_OFFSET + 1}&epoch=e", "since", "too large"),
        ("since=" + "9" * 17 + "&epoch=e", "since", "too large"),
        ("since=" + "9" * 100_000 + "&epoch=e", "since", "too large"),  # int() would refuse over 4300 digits
        ("since=1&since=1&epoch=e", "since", "repeated"),
        ("since=1&epoch=e&epoch=e", "epoch", "repeated"),
        ("since=1&epoch=", "epoch", "malformed"),
        ("since=1&epoch", "epoch", "malformed"),
        ("since=1&epoch=" + "x" * 65, "epoch", "malformed"),
        ("since=1&epoch=a%20b", "epoch", "malformed"),
        ("since=1&epoch=a/b", "epoch", "malformed"),
        ("since=1&epoch=%C3%A9", "epoch", "malformed"),
        ("since=1&epoch=%00", "epoch", "malformed"),
    ],
)
def test_malformed_queries_get_a_400_naming_the_field(query: str, field: str, problem: str) -> None:
    """Every malformed query is an InvalidRecoveryQuery (HTTP 400) saying which parameter and what is wrong."""
    with pytest.raises(InvalidRecoveryQuery) as caught:
        parse_recovery_query(query)
    assert caught.value.status == 400
    assert caught.value.field == field
    assert str(caught.value).startswith(f"{field}: {problem}")


def test_leading_zeros_do_not_count_towards_the_length_bound() -> None:
    """A zero-padded offset is still an offset (the digit bound is on its value)."""
    assert parse_recovery_query("since=" + "0" * 40 + "7&epoch=e") == RecoveryQuery(7, "e")


@given(st.text() | st.binary())
def test_any_query_gets_a_documented_answer(query: str | bytes) -> None:
    """Arbitrary query strings give None, a RecoveryQuery in range, or InvalidRecoveryQuery: never a traceback."""
    try:
        parsed = parse_recovery_query(query)
    except InvalidRecoveryQuery as error:
        assert error.field in ("since", "epoch")
        return
    assert parsed is None or 0 <= parsed.since <= MAX_OFFSET


@given(
    st.lists(
        st.tuples(st.sampled_from(["since", "epoch", "token", "sinc", "s%69nce"]), st.text(max_size=30)), max_size=5
    )
)
def test_any_combination_of_parameters_gets_a_documented_answer(pairs: list[tuple[str, str]]) -> None:
    """Random mixes of since, epoch and other parameters never raise anything undocumented."""
    query = "&".join(f"{name}={value}" for name, value in pairs)
    try:
        parse_recovery_query(query)
    except InvalidRecoveryQuery:
        pass


# --- the decision ----------------------------------------------------------------------------

#: A channel in epoch EPOCH whose history holds offsets 11..20.
STATE = ChannelState(EPOCH, 11, 20)


@pytest.mark.parametrize(
    ("query", "outcome", "offset", "reason"),
    [
        (None, NoticeType.SUBSCRIBED, 20, None),
        (RecoveryQuery(20, EPOCH), NoticeType.RECOVERED, 20, None),
        (RecoveryQuery(15, EPOCH), NoticeType.RECOVERED, 15, None),
        (RecoveryQuery(10, EPOCH), NoticeType.RECOVERED, 10, None),
        (RecoveryQuery(9, EPOCH), NoticeType.NOT_RECOVERED, 10, Reason.EXPIRED),
        (RecoveryQuery(0, EPOCH), NoticeType.NOT_RECOVERED, 10, Reason.EXPIRED),
        (RecoveryQuery(21, EPOCH), NoticeType.NOT_RECOVERED, 10, Reason.AHEAD),
        (RecoveryQuery(MAX_OFFSET, EPOCH), NoticeType.NOT_RECOVERED, 10, Reason.AHEAD),
        (RecoveryQuery(15, "other"), NoticeType.NOT_RECOVERED, 10, Reason.EPOCH_CHANGED),
        (RecoveryQuery(15, None), NoticeType.NOT_RECOVERED, 10, Reason.NO_EPOCH),
    ],
)
def test_decide(query: RecoveryQuery | None, outcome: NoticeType, offset: int, reason: Reason | None) -> None:
    """Recovered when every message after since is retained in the same epoch; otherwise why not."""
    decision = decide(query, STATE)
    assert (decision.outcome, decision.epoch, decision.offset, decision.reason) == (outcome, EPOCH, offset, reason)
    assert decision.last_offset == 20


def test_recovered_replays_exactly_the_missed_offsets() -> None:
    """A client at offset 15 replays 16..20, then goes live."""
    assert list(decide(RecoveryQuery(15, EPOCH), STATE).replay) == [16, 17, 18, 19, 20]


def test_not_recovered_replays_everything_retained() -> None:
    """A client that cannot be recovered still gets all that history holds (a chat's recent messages)."""
    assert list(decide(RecoveryQuery(3, EPOCH), STATE).replay) == list(range(11, 21))


def test_plain_subscription_replays_nothing() -> None:
    """Without a query, only live messages come."""
    assert list(decide(None, STATE).replay) == []


def test_since_zero_on_a_fresh_channel_is_recovered() -> None:
    """A client that saw nothing of the epoch, while nothing expired, misses nothing."""
    assert decide(RecoveryQuery(0, EPOCH), ChannelState(EPOCH, 1, 5)).outcome is NoticeType.RECOVERED


def test_history_off_recovers_a_client_that_missed_nothing() -> None:
    """With nothing retained, a client at the last offset is recovered; one behind is not."""
    state = ChannelState(EPOCH, 21, 20)
    assert decide(RecoveryQuery(20, EPOCH), state).outcome is NoticeType.RECOVERED
    assert decide(RecoveryQuery(19, EPOCH), state).reason is Reason.EXPIRED


def test_decision_notice() -> None:
    """The decision becomes the notice the client gets first."""
    notice = decide(RecoveryQuery(3, EPOCH), STATE).notice("/chat")
    assert notice == Notice(NoticeType.NOT_RECOVERED, "/chat", EPOCH, 10, Reason.EXPIRED)


@given(
    st.none() | st.builds(RecoveryQuery, st.integers(0, 100), st.none() | st.sampled_from([EPOCH, "x"])),
    st.integers(1, 60),
    st.integers(0, 59),
)
def test_decide_never_fails_and_never_skips(query: RecoveryQuery | None, first: int, last: int) -> None:
    """Any query on any state: recovered means nothing after since is missing, and the replay is retained."""
    first = min(first, last + 1)
    state = ChannelState(EPOCH, first, last)
    decision = decide(query, state)
    assert set(decision.replay) <= set(range(first, last + 1))
    if decision.outcome is NoticeType.RECOVERED:
        assert query is not None and query.epoch == EPOCH and first - 1 <= query.since <= last
        assert decision.offset == query.since
