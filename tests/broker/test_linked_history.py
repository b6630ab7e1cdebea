"""Positioned publishes and history reads of the cross-process broker (wsdaemon.broker.linked), over a fake link."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from twisted.internet.defer import Deferred, succeed
from twisted.logger import capturedLogs

from tests.broker.members import Plain, Positioned
from wsdaemon.broker import HistoryUnavailable, LinkState, Route
from wsdaemon.broker.linked import LinkedBroker
from wsdaemon.broker.payload import encode_plain, encode_positioned, header_opcode
from wsdaemon.core.frames import Opcode, SharedMessage
from wsdaemon.hub import ChannelState, Fetch, HubLimits, Publication, RecoveryQuery

ORIGIN = b"ourself!"
OTHER = b"another!"
LIMITS = HubLimits(history_size=10)


class HistoryLink:
    """Plays Redis: the test answers each positioned publish and history read itself."""

    description = "fake://"

    def __init__(self):
        self.positions: list[tuple[str, bytes, bytes, HubLimits, str, Deferred]] = []
        self.reads: list[tuple[str, Fetch, Deferred]] = []
        self.published: list[tuple[str, bytes]] = []

    def start(self, broker):
        self.broker = broker

    def stop(self):
        return succeed(None)

    def publish(self, channel, data):
        self.published.append((channel, data))

    def publish_positioned(self, channel, header, data, limits, epoch):
        answer: Deferred = Deferred()
        self.positions.append((channel, header, data, limits, epoch, answer))
        return answer

    def history(self, channel, fetch, limits, epoch):
        answer: Deferred = Deferred()
        self.reads.append((channel, fetch, answer))
        return answer

    def subscribe(self, channel):
        self.broker.link_subscribed(channel)

    def unsubscribe(self, channel):
        pass

    def members_changed(self, channel, count):
        pass

    def presence(self, channel):
        return succeed(0)

    def answer(self, index: int, epoch: str, offset: int) -> None:
        """Redis ran the script: the answer arrives."""
        self.positions[index][5].callback((epoch, offset))

    def come_back(self, index: int, epoch: str, offset: int) -> None:
        """Redis PUBLISHed the positioned payload: it arrives on the subscribed connection."""
        channel, header, data, _, _, _ = self.positions[index]
        self.broker.link_message(channel, header + b"%s %d " % (epoch.encode(), offset) + data)


def text(value: str) -> SharedMessage:
    return SharedMessage(Opcode.TEXT, value.encode())


def up(max_pending: int = 5) -> tuple[LinkedBroker, HistoryLink]:
    link = HistoryLink()
    broker = LinkedBroker(link, max_pending, ORIGIN, epochs=lambda: "fresh")
    broker.start()
    broker.link_up()
    return broker, link


def outcome(deferred: Deferred) -> object:
    box: list[object] = []
    deferred.addBoth(box.append)
    assert box, "not fired"
    return box[0]


def test_a_positioned_publish_hands_the_link_the_header_message_bounds_and_a_fresh_epoch():
    """The link gets what its script needs: the channel, our header (P, origin, sequence), the bytes, the bounds."""
    broker, link = up()
    broker.publish("/c", text("hello"), history=LIMITS)
    ((channel, header, data, limits, epoch, _),) = link.positions
    assert (channel, data, limits, epoch) == ("/c", b"hello", LIMITS, "fresh")
    assert header[:1] == b"P" and header[1:9] == ORIGIN and header_opcode(header) is Opcode.TEXT
    assert link.published == [], "a positioned publish never goes out unpositioned"


def test_the_answer_carries_the_position_the_link_gave():
    """Published has the epoch and the offset of the script's answer."""
    broker, link = up()
    answer = broker.publish("/c", text("hello"), history=LIMITS)
    link.answer(0, "e1", 7)
    result = outcome(answer)
    assert (result.route, result.epoch, result.offset, result.size_bytes) == (Route.BROKER, "e1", 7, 5)


def test_members_get_our_message_once_when_it_comes_back_with_its_position():
    """On a subscribed channel, delivery waits for the message to come back (one order everywhere), then once."""
    broker, link = up()
    history, plain = Positioned(), Plain()
    broker.subscribe("/c", history)
    broker.subscribe("/c", plain)
    broker.publish("/c", text("a"), history=LIMITS)
    broker.publish("/c", text("b"), history=LIMITS)
    link.answer(0, "e1", 1)
    assert history.publications == [], "the answer alone does not deliver: the link's order decides"
    link.come_back(0, "e1", 1)
    link.come_back(1, "e1", 2)
    link.answer(1, "e1", 2)
    assert history.publications == [Publication("/c", "e1", 1, b"a"), Publication("/c", "e1", 2, b"b")]
    assert plain.got == [b"a", b"b"]


def test_on_a_channel_not_yet_subscribed_members_get_it_with_the_answer():
    """Before the link confirmed the subscription the message cannot come back: the answer delivers it."""
    broker, link = up()
    member = Positioned()
    broker.members.add("/c", member)  # a member the link has not confirmed yet
    broker.publish("/c", text("a"), history=LIMITS)
    link.answer(0, "e1", 1)
    assert member.offsets() == [1]
    link.come_back(0, "e1", 1)
    assert member.offsets() == [1], "the copy that comes back later is not delivered again"


def test_positioned_messages_of_other_processes_reach_history_and_plain_members():
    """A P/Q payload from another daemon is one Publication for history members and the raw message for others."""
    broker, _ = up()
    history, plain = Positioned(), Plain()
    broker.subscribe("/c", history)
    broker.subscribe("/c", plain)
    broker.link_message("/c", encode_positioned(Opcode.BINARY, b"\x00\x01", OTHER, 3, "e1", 9))
    assert history.publications == [Publication("/c", "e1", 9, b"\x00\x01", binary=True)]
    assert plain.got == [b"\x00\x01"]


def test_an_unpositioned_message_on_a_history_channel_is_delivered_plain():
    """redis-cli PUBLISH of a 't...' payload has no position: even history members get it through deliver()."""
    broker, _ = up()
    history = Positioned()
    broker.subscribe("/c", history)
    broker.link_message("/c", encode_plain(Opcode.TEXT, b"from a backend"))
    assert history.got == [b"from a backend"] and history.publications == []


def test_while_down_a_positioned_publish_fails_and_nothing_is_queued():
    """No offset can be given while the link is down: HistoryUnavailable (503); members here get nothing."""
    link = HistoryLink()
    broker = LinkedBroker(link, 5, ORIGIN)
    broker.start()
    broker.link_failed("connection refused")
    member = Positioned()
    broker.subscribe("/c", member)
    failure = outcome(broker.publish("/c", text("x"), history=LIMITS))
    assert failure.check(HistoryUnavailable) and "down" in str(failure.value)
    assert failure.value.status == 503
    assert link.positions == [] and not broker.pending and member.publications == []


def test_a_link_failure_is_history_unavailable_with_our_words_logged_once():
    """The link's own error (it may name hosts) goes to the log once; the publisher gets our sentence."""
    broker, link = up()
    with capturedLogs() as events:
        first = broker.publish("/c", text("x"), history=LIMITS)
        second = broker.publish("/c", text("y"), history=LIMITS)
        for _, _, _, _, _, answer in link.positions:
            answer.errback(ConnectionError("connection to 10.0.0.7 lost"))
    for result in (outcome(first), outcome(second)):
        assert result.check(HistoryUnavailable) and str(result.value) == "the broker could not position the message"
    warnings = [e for e in events if "could not" in e.get("log_format", "")]
    assert len(warnings) == 1


def test_answers_awaited_from_the_link_are_bounded():
    """At most max_pending_messages answers wait; beyond that a publish or read fails at once, and recovers after."""
    broker, link = up(max_pending=2)
    broker.publish("/c", text("a"), history=LIMITS)
    broker.history("/c", Fetch("/c", None), LIMITS)
    refused = outcome(broker.publish("/c", text("b"), history=LIMITS))
    assert refused.check(HistoryUnavailable) and "max_pending_messages" in str(refused.value)
    assert len(link.positions) == 1
    link.answer(0, "e1", 1)
    broker.publish("/c", text("c"), history=LIMITS)
    assert len(link.positions) == 2


def test_a_message_in_flight_when_the_link_drops_is_delivered_once_its_position_is_known():
    """Lost with the link before it came back: delivered here with its position if the answer came, else never."""
    broker, link = up()
    member = Positioned()
    broker.subscribe("/c", member)
    broker.publish("/c", text("a"), history=LIMITS)
    lost = broker.publish("/c", text("b"), history=LIMITS)
    link.answer(0, "e1", 1)
    broker.link_down("lost")
    assert member.offsets() == [1]
    link.positions[1][5].errback(ConnectionError("lost"))
    assert member.offsets() == [1], "a message whose position never came is not delivered unpositioned"
    assert outcome(lost).check(HistoryUnavailable), "and its publisher is told"
    assert broker.state is LinkState.DOWN


def test_an_orphaned_message_is_delivered_when_its_answer_comes_after_its_turn():
    """A later message of ours came back first (the earlier one was lost in a subscribe race): the answer delivers it."""
    broker, link = up()
    member = Positioned()
    broker.subscribe("/c", member)
    broker.publish("/c", text("a"), history=LIMITS)
    broker.publish("/c", text("b"), history=LIMITS)
    link.come_back(1, "e1", 2)
    assert member.offsets() == [2]
    link.answer(0, "e1", 1)
    assert member.offsets() == [2, 1], "delivered late rather than lost; the subscription sorts it out"


def test_history_is_read_through_the_link_with_a_fresh_epoch_for_a_new_channel():
    """history() asks the link with the fetch and a fresh epoch, and gives back what it read."""
    broker, link = up()
    fetch = Fetch("/c", RecoveryQuery(3, "e1"))
    reading = broker.history("/c", fetch, LIMITS)
    ((channel, asked, answer),) = link.reads
    assert (channel, asked) == ("/c", fetch)
    answer.callback((ChannelState("e1", 1, 4), [Publication("/c", "e1", 4, b"x")]))
    assert outcome(reading) == (ChannelState("e1", 1, 4), [Publication("/c", "e1", 4, b"x")])


def test_history_while_down_or_failing_is_history_unavailable():
    """Down: refused at once; the link failing: HistoryUnavailable with our words."""
    link = HistoryLink()
    broker = LinkedBroker(link, 5, ORIGIN)
    assert outcome(broker.history("/c", Fetch("/c", None), LIMITS)).check(HistoryUnavailable)
    broker.link_up()
    reading = broker.history("/c", Fetch("/c", None), LIMITS)
    link.reads[0][2].errback(RuntimeError("boom"))
    failure = outcome(reading)
    assert failure.check(HistoryUnavailable) and str(failure.value) == "the broker could not read the channel's history"


def test_questions_asked_while_the_first_attempt_is_under_way_wait_for_it():
    """A daemon that just started: its first members' reads and publishes are asked once the link is up, in order."""
    link = HistoryLink()
    broker = LinkedBroker(link, 5, ORIGIN, epochs=lambda: "fresh")
    broker.start()
    reading = broker.history("/c", Fetch("/c", None), LIMITS)
    publishing = broker.publish("/c", text("first"), history=LIMITS)
    assert link.reads == [] and link.positions == [], "nothing is asked of a link that is not up"
    broker.link_up()
    assert [read[0] for read in link.reads] == ["/c"] and [p[2] for p in link.positions] == [b"first"]
    link.reads[0][2].callback((ChannelState("e1", 1, 0), []))
    link.answer(0, "e1", 1)
    assert outcome(reading) == (ChannelState("e1", 1, 0), [])
    assert outcome(publishing).offset == 1


def test_questions_held_for_a_first_attempt_that_fails_are_history_unavailable():
    """The first attempt failed (or the daemon stopped first): held questions fail; later ones fail at once."""
    for end in ("failed", "stopped"):
        link = HistoryLink()
        broker = LinkedBroker(link, 5, ORIGIN)
        broker.start()
        reading = broker.history("/c", Fetch("/c", None), LIMITS)
        publishing = broker.publish("/c", text("x"), history=LIMITS)
        if end == "failed":
            broker.link_failed("connection refused")
        else:
            broker.stop()
        for held in (reading, publishing):
            failure = outcome(held)
            assert failure.check(HistoryUnavailable) and "down" in str(failure.value), end
        assert outcome(broker.history("/c", Fetch("/c", None), LIMITS)).check(HistoryUnavailable)
        assert link.reads == [] and link.positions == []


def test_questions_held_for_the_first_attempt_are_bounded():
    """No more than max_pending_messages wait for the first attempt; the next one fails at once."""
    link = HistoryLink()
    broker = LinkedBroker(link, 2, ORIGIN)
    broker.start()
    held = [broker.history("/c", Fetch("/c", None), LIMITS) for _ in range(2)]
    refused = outcome(broker.history("/c", Fetch("/c", None), LIMITS))
    assert refused.check(HistoryUnavailable) and "max_pending_messages" in str(refused.value)
    broker.link_up()
    assert len(link.reads) == 2 and all(not d.called for d in held)


def test_history_unavailable_from_the_link_passes_through():
    """A link that already says HistoryUnavailable (a malformed state) keeps its sentence."""
    broker, link = up()
    reading = broker.history("/c", Fetch("/c", None), LIMITS)
    link.reads[0][2].errback(HistoryUnavailable("the broker gave a malformed history state"))
    assert str(outcome(reading).value) == "the broker gave a malformed history state"


def test_plain_publishes_are_unchanged_on_a_broker_with_history():
    """Without history= a publish goes out unpositioned, as before."""
    broker, link = up()
    answer = outcome(broker.publish("/c", text("x")))
    assert (answer.epoch, answer.offset) == (None, None) and len(link.published) == 1


@st.composite
def link_events(draw):
    """A run of positioned publishes and what the link does with them: answers and returns, each in order
    (Redis keeps order per connection), interleaved at random; some returns lost; maybe the link drops."""
    count = draw(st.integers(min_value=1, max_value=8))
    returns = [i for i in range(count) if draw(st.booleans()) or draw(st.booleans())]
    events = []
    answers, backs = list(range(count)), list(returns)
    while answers or backs:
        if answers and (not backs or draw(st.booleans())):
            events.append(("answer", answers.pop(0)))
        else:
            events.append(("back", backs.pop(0)))
    cut = draw(st.integers(min_value=0, max_value=len(events)))
    return count, events, cut


@given(link_events())
def test_our_positioned_messages_are_delivered_once_whatever_the_link_does(run):
    """In any interleaving of answers and returns, with returns lost and the link dropping (at the end, at the
    latest): each message reaches members at most once; exactly once if its position became known; with its own
    position; and in offset order when nothing was lost."""
    count, events, cut = run
    broker, link = up(max_pending=100)
    member = Positioned()
    broker.subscribe("/c", member)
    answers = [broker.publish("/c", text(f"m{i}"), history=LIMITS) for i in range(count)]
    known = set()
    for index, (kind, i) in enumerate(events):
        if index == cut:
            broker.link_down("lost")
        if kind == "answer":
            if index < cut:
                link.answer(i, "e1", i + 1)
                known.add(i)
            else:
                link.positions[i][5].errback(ConnectionError("lost"))
        elif index < cut:
            link.come_back(i, "e1", i + 1)
            known.add(i)
    if cut == len(events):
        broker.link_down("lost at the end")  # what never came back is delivered now, or never
    for answer in answers:
        answer.addErrback(lambda failure: failure.trap(HistoryUnavailable))
    delivered = member.offsets()
    assert len(delivered) == len(set(delivered)), "never twice"
    assert set(delivered) == {i + 1 for i in known}, "exactly the messages whose position became known"
    assert all(p.payload == f"m{p.offset - 1}".encode() for p in member.publications)
    if cut == len(events) and all(("back", i) in events for i in range(count)):
        assert delivered == sorted(delivered), "nothing lost: the link's order"
