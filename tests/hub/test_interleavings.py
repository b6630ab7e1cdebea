"""Hypothesis: random publishes, disconnects, reconnects and slow history reads never give a gap or a duplicate.

A small world runs the hub's pieces the way the wiring will: a
:class:`~wsdaemon.hub.HistoryStore` gives offsets, each connected client has
a :class:`~wsdaemon.hub.Subscription` and an in-flight queue of live messages
(delivered in order, late, possibly lost), and each :class:`~wsdaemon.hub.Fetch`
is read at one random moment and answered at a later one, as a Redis round
trip would be. Each client follows ``docs/recovery.md``: a notice sets its
position, a message must be the next offset of its epoch (or offset 1 of a
new one). The client itself checks that the server never made it drop a
duplicate or see a silent gap.
"""

from __future__ import annotations

import itertools
from collections import deque
from dataclasses import dataclass, field, replace

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wsdaemon.hub import (
    Action,
    ChannelState,
    Fetch,
    HistoryStore,
    HubLimits,
    Notice,
    NoticeType,
    Publication,
    Reason,
    RecoveryQuery,
    Subscription,
)

CHANNEL = "/chat/room"


@dataclass
class Client:
    """A client as docs/recovery.md describes it, plus what it saw."""

    epoch: str | None = None
    offset: int = 0
    subscription: Subscription | None = None
    inflight: deque[Publication] = field(default_factory=deque)
    received: list[tuple[str, int]] = field(default_factory=list)
    notices: list[Notice] = field(default_factory=list)

    def query(self) -> RecoveryQuery | None:
        """The reconnect query: the position of the last message (or notice) received."""
        return None if self.epoch is None else RecoveryQuery(self.offset, self.epoch)

    def on_notice(self, notice: Notice) -> None:
        self.notices.append(notice)
        self.epoch, self.offset = notice.epoch, notice.offset

    def on_message(self, publication: Publication) -> None:
        """The client's own check: each message is the next one in the epoch of the last notice."""
        assert publication.epoch == self.epoch, f"epoch {publication.epoch} without a notice (at {self.epoch})"
        assert publication.offset == self.offset + 1, f"gap or duplicate: at {self.offset}, got {publication.offset}"
        self.offset = publication.offset
        self.received.append((publication.epoch, publication.offset))


@dataclass
class PendingFetch:
    client: Client
    subscription: Subscription
    fetch: Fetch
    answer: tuple[ChannelState, list[Publication]] | None = None


class World:
    """One channel, a store, clients and fetches in flight; every step is one event."""

    def __init__(self, limits: HubLimits, clients: int, synchronous: bool) -> None:
        self.limits = limits
        self.epochs = (f"epoch{n}" for n in itertools.count(1))
        self.store = HistoryStore(limits, lambda: next(self.epochs))
        self.clients = [Client() for _ in range(clients)]
        self.fetches: list[PendingFetch] = []
        self.synchronous = synchronous
        self.now = 0.0
        self.published: list[Publication] = []

    def act(self, client: Client, subscription: Subscription, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, Fetch):
                self.fetches.append(PendingFetch(client, subscription, action))
                if self.synchronous:  # in-process: the store answers within the same turn
                    self.read(len(self.fetches) - 1)
                    self.answer(len(self.fetches) - 1)
            elif isinstance(action, Notice):
                client.on_notice(action)
            else:
                client.on_message(action)

    def connect(self, index: int) -> None:
        client = self.clients[index]
        if client.subscription is None:
            client.subscription = Subscription(CHANNEL, client.query(), self.limits)
            client.inflight.clear()  # registered for live messages from now on, before the first fetch
            self.act(client, client.subscription, [client.subscription.start()])

    def disconnect(self, index: int) -> None:
        client = self.clients[index]
        client.subscription = None
        client.inflight.clear()
        self.fetches = [f for f in self.fetches if f.client is not client]

    def publish(self, size: int) -> None:
        publication = self.store.publish(CHANNEL, b"x" * size, False, self.now)
        self.published.append(publication)
        for client in self.clients:
            if client.subscription is not None:
                client.inflight.append(publication)

    def deliver(self, index: int, lose: bool = False) -> None:
        client = self.clients[index]
        if client.subscription is not None and client.inflight:
            publication = client.inflight.popleft()
            if not lose:
                self.act(client, client.subscription, client.subscription.live(publication))

    def read(self, index: int) -> None:
        """The broker reads state and history for a fetch (both at once)."""
        pending = self.fetches[index % len(self.fetches)] if self.fetches else None
        if pending is not None and pending.answer is None:
            pending.answer = self.store.answer(pending.fetch, self.now)

    def answer(self, index: int) -> None:
        """The read reaches the subscriber (later than the live messages published meanwhile)."""
        pending = self.fetches[index % len(self.fetches)] if self.fetches else None
        if pending is not None and pending.answer is not None:
            self.fetches.remove(pending)
            self.act(pending.client, pending.subscription, pending.subscription.resolve(*pending.answer))

    def restart(self) -> None:
        """An in-process daemon restarts: every client is cut off and history is lost (new epoch)."""
        for index in range(len(self.clients)):
            self.disconnect(index)
        self.store = HistoryStore(self.limits, lambda: next(self.epochs))

    def flush(self) -> None:
        """The shared store loses everything (Redis FLUSHALL) while clients stay connected and messages are in flight."""
        self.store = HistoryStore(self.limits, lambda: next(self.epochs))

    def drain(self) -> None:
        """Every fetch is read and answered and every live message delivered, without losses."""
        for _ in range(10_000):  # live messages first, so that they pile up behind pending fetches
            if any(c.inflight for c in self.clients):
                for index in range(len(self.clients)):
                    self.deliver(index)
            elif self.fetches:
                self.read(0)
                self.answer(0)
            else:
                return
        raise AssertionError("the world did not settle")

    def settle(self, lossy: bool = False) -> None:
        """Check liveness: drained, every connected client is at the last position; then again after reconnecting.

        With ``lossy``, one more message is published first, so that a client
        whose last live message was lost notices the gap (nothing else could
        tell it).
        """
        if lossy:
            self.publish(1)
        self.drain()
        self.assert_connected_are_current()
        for index in range(len(self.clients)):
            self.disconnect(index)
            self.connect(index)
        self.drain()
        self.assert_connected_are_current()

    def assert_connected_are_current(self) -> None:
        state = self.store.state(CHANNEL, self.now)
        for client in self.clients:
            if (
                client.subscription is not None and state.last_offset > 0
            ):  # a new epoch with no message: nothing to miss
                assert (client.epoch, client.offset) == (state.epoch, state.last_offset)

    def run(self, steps: list[tuple[str, int]]) -> None:
        for name, argument in steps:
            if name == "publish":
                self.publish(argument * 150)
            elif name == "tick":
                self.now += argument
            elif name in ("connect", "disconnect", "deliver", "read", "answer"):
                getattr(self, name)(argument % len(self.clients))
            elif name == "lose":
                self.deliver(argument % len(self.clients), lose=True)
            elif name == "restart":
                self.restart()
            elif name == "flush":
                self.flush()


def steps(*extra: str) -> st.SearchStrategy[list[tuple[str, int]]]:
    """Scripts of events; deliveries, reads and answers are frequent so that live messages race fetches."""
    names = ["publish"] * 3 + ["connect", "disconnect"] + ["deliver"] * 3 + ["read", "answer"] * 2 + list(extra)
    return st.lists(st.tuples(st.sampled_from(names), st.integers(0, 7)), max_size=150)


BIG_HISTORY = HubLimits(
    history_size=10_000,
    history_max_bytes=2**30,
    history_total_max_bytes=2**30,
    history_ttl_seconds=1e6,
    replay_buffer_max_bytes=1024,  # a few of the larger messages: overflows by bytes too
)
PROPERTY = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def reasons(world: World) -> set[str | None]:
    return {n.reason for c in world.clients for n in c.notices if n.type is NoticeType.NOT_RECOVERED}


@PROPERTY
@given(steps(), st.integers(1, 3), st.booleans(), st.integers(1, 4))
def test_offset_in_history_means_every_message_exactly_once(
    script: list[tuple[str, int]], clients: int, synchronous: bool, buffer: int
) -> None:
    """With history that keeps everything, each client gets every message after its first position, once, in order.

    Small replay buffers (1 to 4 messages) force overflows and the refetch that follows.
    """
    world = World(replace(BIG_HISTORY, replay_buffer_max_messages=buffer), clients, synchronous)
    world.run(script)
    world.settle()
    assert reasons(world) == set()  # never "not recovered" while the offset is in history
    for client in world.clients:
        first = client.notices[0]
        assert first.type is NoticeType.SUBSCRIBED
        assert [offset for _, offset in client.received] == list(range(first.offset + 1, len(world.published) + 1))


@PROPERTY
@given(steps("lose", "lose"), st.integers(1, 3), st.integers(1, 4))
def test_messages_lost_on_the_way_are_filled_from_history(
    script: list[tuple[str, int]], clients: int, buffer: int
) -> None:
    """A broker link that loses live messages still gives each client every message once (history fills the gaps)."""
    world = World(replace(BIG_HISTORY, replay_buffer_max_messages=buffer), clients, False)
    world.run(script)
    world.settle(lossy=True)
    assert reasons(world) == set()


@PROPERTY
@given(steps("restart", "flush"), st.integers(1, 3), st.booleans())
def test_restart_is_announced_and_the_new_epoch_complete(
    script: list[tuple[str, int]], clients: int, synchronous: bool
) -> None:
    """After a history loss (a restart, or a flush under connected clients) clients are told 'epoch_changed'.

    Then they get every message of the new epoch, including those published
    before they noticed, and late messages of the old epoch are dropped.
    """
    world = World(BIG_HISTORY, clients, synchronous)
    world.run(script)
    world.settle()
    assert reasons(world) <= {Reason.EPOCH_CHANGED}
    current = world.store.state(CHANNEL, world.now).epoch
    for client in world.clients:
        first_notice = next(n for n in client.notices if n.epoch == current)
        got = [offset for epoch, offset in client.received if epoch == current]
        assert got == list(range(first_notice.offset + 1, world.store.state(CHANNEL, world.now).last_offset + 1))


@PROPERTY
@given(steps("lose", "tick", "restart", "flush"), st.integers(1, 3), st.integers(0, 6), st.integers(1, 4))
def test_small_history_never_gives_a_silent_gap(
    script: list[tuple[str, int]], clients: int, size: int, buffer: int
) -> None:
    """With tiny history, TTLs, losses, restarts and flushes a client may be told it was not recovered, never misled.

    Every message the client accepts is the next of its epoch (checked by the
    client), "not recovered" has one of the documented reasons, and after
    settling everyone is at the last position.
    """
    limits = HubLimits(
        history_size=size, history_ttl_seconds=5, replay_buffer_max_messages=buffer, replay_buffer_max_bytes=1024
    )
    world = World(limits, clients, False)
    world.run(script)
    world.settle(lossy=True)
    assert reasons(world) <= {Reason.EXPIRED, Reason.EPOCH_CHANGED}  # in-process history has no holes: no "gap"


@PROPERTY
@given(
    st.lists(
        st.tuples(st.sampled_from(["publish", "deliver", "deliver", "read", "answer", "tick"]), st.integers(0, 7))
    ),
    st.integers(1, 3),
    st.booleans(),
)
def test_connected_clients_follow_new_epochs_without_notices(
    script: list[tuple[str, int]], clients: int, synchronous: bool
) -> None:
    """A member connected throughout gets one 'subscribed' notice, then every message: expiry keeps the epoch."""
    limits = replace(BIG_HISTORY, history_ttl_seconds=5, replay_buffer_max_bytes=2**20)  # no overflow: see above
    world = World(limits, clients, synchronous)
    for index in range(clients):
        world.connect(index)
    world.run(script)
    world.drain()
    world.assert_connected_are_current()
    for client in world.clients:
        [notice] = client.notices
        assert notice.type is NoticeType.SUBSCRIBED
        assert notice.epoch == "epoch1"
        assert client.received == [(p.epoch, p.offset) for p in world.published if p.offset > notice.offset]
