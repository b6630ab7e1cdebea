"""Channel history in Redis (wsdaemon.broker.redis_history): keys, script arguments and answers, by function calls.

The scripts themselves run against a real redis-server in tests/integration/test_broker_history_redis.py.
"""

from __future__ import annotations

import pytest

from wsdaemon.broker.interface import HistoryUnavailable
from wsdaemon.broker.payload import positioned_header
from wsdaemon.broker.redis_history import (
    HISTORY_SCRIPT,
    PUBLISH_SCRIPT,
    history_answer,
    history_args,
    history_keys,
    position_answer,
    publish_args,
    ttl_ms,
)
from wsdaemon.core.frames import Opcode
from wsdaemon.hub import ChannelState, Fetch, HubLimits, Publication, RecoveryQuery

ORIGIN = b"ourself!"
LIMITS = HubLimits(history_size=100, history_ttl_seconds=2.5, history_max_bytes=10)
EPOCH = "e1"


def test_each_channel_has_an_epoch_an_offset_and_a_stream_key_under_the_prefix():
    """The three keys name the channel after the prefix, so redis-cli --scan 'wsdaemon:history:*' finds them."""
    assert history_keys("wsdaemon:", "/chat/room1") == [
        b"wsdaemon:history:epoch:/chat/room1",
        b"wsdaemon:history:offset:/chat/room1",
        b"wsdaemon:history:stream:/chat/room1",
    ]


def test_the_ttl_is_history_ttl_seconds_in_milliseconds():
    """2.5 s is 2500 ms (PEXPIRE's unit)."""
    assert ttl_ms(LIMITS) == b"2500"


def test_publish_args_carry_the_bounds_and_say_whether_the_message_is_kept():
    """history_size and the TTL go to the script; a message over history_max_bytes is not kept (keep '0')."""
    header = positioned_header(Opcode.BINARY, ORIGIN, 5)
    small = publish_args(b"wsdaemon:/c", header, b"0123456789", LIMITS, "fresh")
    assert small == [b"fresh", b"2500", b"100", b"1", header, b"b", b"0123456789", b"wsdaemon:/c", b"9007199254740991"]
    big = publish_args(b"wsdaemon:/c", positioned_header(Opcode.TEXT, ORIGIN, 6), b"01234567890", LIMITS, "fresh")
    assert big[3] == b"0" and big[5] == b"t"


def test_the_scripts_do_every_step_in_redis():
    """One script positions, appends (trimmed, MAXLEN ~), renews the TTLs and publishes; the other reads together."""
    for step in ("INCR", "XADD", "MAXLEN", "~", "PEXPIRE", "PUBLISH"):
        assert step in PUBLISH_SCRIPT
    for step in ("GET", "XRANGE", "XREVRANGE"):
        assert step in HISTORY_SCRIPT


def test_a_position_answer_is_an_epoch_and_an_offset():
    """The script's {epoch, offset} becomes ('e1', 7)."""
    assert position_answer([b"e1", 7]) == ("e1", 7)


@pytest.mark.parametrize("reply", [None, [b"e1"], [b"bad epoch", 1], [b"e1", -1], [b"e1", b"x"], [b"\xff", 1]])
def test_a_malformed_position_answer_is_history_unavailable(reply):
    """Keys someone else wrote never give a client a wrong position: HistoryUnavailable (503) instead."""
    with pytest.raises(HistoryUnavailable, match="malformed position"):
        position_answer(reply)


def test_history_args_send_the_clients_position_or_none():
    """A query sends its epoch and offset, and the byte budget; a plain subscription sends -1 (no entries wanted)."""
    assert history_args(LIMITS, Fetch("/c", RecoveryQuery(4, "e1")), "fresh") == [b"fresh", b"2500", b"e1", b"4", b"10"]
    assert history_args(LIMITS, Fetch("/c", RecoveryQuery(0, None)), "fresh")[2:4] == [b"", b"0"]
    assert history_args(LIMITS, Fetch("/c", None), "fresh")[2:4] == [b"", b"-1"]


def entry(offset: int, data: bytes = b"tx") -> list[object]:
    return [b"%d-0" % offset, [b"p", data]]


def test_a_history_answer_keeps_exactly_the_entries_after_the_decision():
    """The script may return more than needed; only the entries after Fetch.after(state) are kept, in order."""
    reply = [b"e1", b"6", b"3", [entry(3), entry(4, b"bbin\x00"), entry(5), entry(6, b"tsix")]]
    state, entries = history_answer(reply, "/c", Fetch("/c", RecoveryQuery(4, "e1")))
    assert state == ChannelState("e1", 3, 6)
    assert entries == [Publication("/c", "e1", 5, b"x"), Publication("/c", "e1", 6, b"six")]


def test_a_history_answer_for_another_epoch_replays_everything_kept():
    """A foreign epoch is not_recovered: every kept entry follows, binary kept binary."""
    reply = [b"e2", b"2", b"1", [entry(1, b"b\x00\x01"), entry(2)]]
    state, entries = history_answer(reply, "/c", Fetch("/c", RecoveryQuery(9, "e1")))
    assert state == ChannelState("e2", 1, 2)
    assert entries == [Publication("/c", "e2", 1, b"\x00\x01", binary=True), Publication("/c", "e2", 2, b"x")]


def test_entries_that_are_not_messages_are_left_out():
    """A stream entry someone else wrote (no p field, a bad payload, a bad ID) is skipped, never delivered."""
    reply = [b"e1", b"4", b"1", [entry(1), [b"2-0", [b"q", b"tx"]], entry(3, b"zz"), [b"x-0", [b"p", b"tx"]], entry(4)]]
    _, entries = history_answer(reply, "/c", Fetch("/c", RecoveryQuery(0, "e1")))
    assert [p.offset for p in entries] == [1, 4]


@pytest.mark.parametrize("reply", [None, [b"e1", b"1", b"3", []], [b"", b"0", b"1", []], [b"e1", b"x", b"1", []]])
def test_a_malformed_history_state_is_history_unavailable(reply):
    """An impossible state (first past last + 1, no epoch, not a number) is a 503, not a traceback."""
    with pytest.raises(HistoryUnavailable, match="malformed history state"):
        history_answer(reply, "/c", Fetch("/c", None))
