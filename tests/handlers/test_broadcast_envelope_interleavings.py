"""Hypothesis: random interleavings of publishes, disconnects, reconnects and late history answers, through the handler.

The hub's own property tests drive :class:`~wsdaemon.hub.Subscription` by plain calls; these drive the
real ``broadcast`` handler in memory (the listener stack, the in-process broker's history, a client
speaking WebSocket), with history reads answered whenever the test says. A client that keeps its
position and reconnects with it must see every offset exactly once, in order, whatever happens between.
"""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.handlers.test_broadcast_envelope import EPOCH, Daemon, SlowHistory
from wsdaemon.testing import MemoryClient

STEPS = st.lists(
    st.sampled_from(["publish", "publish", "publish", "answer_old", "answer_now", "drop", "reconnect"]),
    max_size=60,
)


class Follower:
    """A client following docs/recovery.md §5: it keeps its position and reconnects with it."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.position: tuple[str, int] | None = None
        self.delivered: list[int] = []
        self.notices: list[dict[str, object]] = []
        self.client: MemoryClient | None = None
        self.connect()

    def connect(self) -> None:
        query = "" if self.position is None else f"?since={self.position[1]}&epoch={self.position[0]}"
        self.client = self.daemon.connect("/chat/room1" + query)

    def read(self) -> None:
        if self.client is None:
            return
        for message in self.client.received():
            assert isinstance(message, str)
            item = json.loads(message)
            if "type" in item:
                self.notices.append(item)
            else:
                assert self.position is not None, "a message before the first notice"
                assert item["epoch"] == self.position[0] and item["offset"] == self.position[1] + 1, (
                    f"after {self.position} came {item['offset']}"
                )
                self.delivered.append(item["offset"])
            self.position = (item["epoch"], item["offset"])

    def drop(self) -> None:
        self.read()
        if self.client is not None:
            self.client.disconnect()
            self.client = None

    def reconnect(self) -> None:
        if self.client is None:
            self.connect()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=STEPS, replay_buffer=st.integers(1, 4))
def test_a_following_client_sees_every_offset_once_in_order(steps, replay_buffer):
    """Publishes, drops, reconnects and history answers in any order: offsets 1..N, each once, never a not_recovered."""
    daemon = Daemon({"replay_buffer_max_messages": replay_buffer}, broker=SlowHistory)
    broker = daemon.broker
    assert isinstance(broker, SlowHistory)
    follower = Follower(daemon)
    broker.answer_now()  # the first session is subscribed at offset 0: everything after is the client's
    follower.read()
    assert follower.notices == [{"type": "subscribed", "channel": "/chat/room1", "epoch": EPOCH, "offset": 0}]
    published = 0
    for step in steps:
        if step == "publish":
            published += 1
            daemon.publish(f"m{published}")
        elif step in ("answer_old", "answer_now") and broker.pending:
            getattr(broker, "answer_with_snapshot" if step == "answer_old" else "answer_now")()
            daemon.server.pump()
        elif step == "drop":
            follower.drop()
        elif step == "reconnect":
            follower.reconnect()
        follower.read()
    follower.reconnect()
    while broker.pending:
        broker.answer_now()
        daemon.server.pump()
        follower.read()
    assert follower.delivered == list(range(1, published + 1))
    assert all(notice["type"] in ("subscribed", "recovered") for notice in follower.notices), follower.notices
    assert follower.position == (EPOCH, published)
