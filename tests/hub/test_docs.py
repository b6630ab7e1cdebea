"""docs/recovery.md stays true: its wire examples are what the hub encodes and parses."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from wsdaemon.hub import (
    ChannelState,
    HistoryStore,
    HubLimits,
    Notice,
    Publication,
    RecoveryQuery,
    Subscription,
    encode_notice,
    encode_publication,
    parse_envelope,
)

DOC = Path(__file__).resolve().parents[2] / "docs" / "recovery.md"
JSON_LINES = [
    line
    for block in re.findall(r"```json\n(.*?)```", DOC.read_text(encoding="utf-8"), re.DOTALL)
    for line in block.splitlines()
]


def test_the_page_has_wire_examples() -> None:
    """The scan finds the examples (so the next test is not vacuous)."""
    assert len(JSON_LINES) >= 10


@pytest.mark.parametrize("line", JSON_LINES)
def test_every_wire_example_parses_and_is_encoded_byte_for_byte(line: str) -> None:
    """Each example on the page parses, and encoding the result gives exactly that line back."""
    item = parse_envelope(line)
    encoded = encode_notice(item) if isinstance(item, Notice) else encode_publication(item)
    assert encoded.decode("utf-8") == line


def test_the_reconnect_example_is_what_a_subscription_sends() -> None:
    """The page's first example session is the hub's own output for that reconnect."""
    epoch = "6743a1f0-9c1e2b3a4d5f6a7b"
    store = HistoryStore(HubLimits(history_size=100), lambda: epoch)
    for text in [f"m{n}" for n in range(1, 41)] + ["missed 1", "missed 2"]:
        store.publish("/chat/room1", text.encode(), False, 0)
    subscription = Subscription("/chat/room1", RecoveryQuery(40, epoch), HubLimits())
    actions = subscription.resolve(*store.answer(subscription.start(), 0))
    live = store.publish("/chat/room1", b"live", False, 0)
    actions += subscription.live(live)
    wire = [encode_notice(a) if isinstance(a, Notice) else encode_publication(a) for a in actions]
    start = JSON_LINES.index(wire[0].decode())
    assert [line.decode() for line in wire] == JSON_LINES[start : start + 4]
    assert isinstance(actions[1], Publication) and store.state("/chat/room1", 0) == ChannelState(epoch, 1, 43)
