"""Channels across the workers of one host, without Redis: the main process relays.

Rules for this file:

* With ``[process] workers > 1`` and no ``[broker]``, each worker's broker is a
  :class:`~wsdaemon.broker.linked.LinkedBroker` on a :class:`RelayLink`: its
  channel to the main process (:mod:`wsdaemon.workers.channel`) carries
  SUBSCRIBE, UNSUBSCRIBE, PUBLISH and COUNT up, MESSAGE down.
* The main process's :class:`RelayHub` writes each PUBLISH it reads, in the order
  it reads them, to every worker subscribed to the channel, the publisher too:
  every worker sees one order, as with Redis, and the payloads are those of
  :mod:`wsdaemon.broker.payload`, unchanged.
* A pipe keeps order, so a worker's SUBSCRIBE is in effect before any PUBLISH it
  sends after it: the link confirms a subscription at once.
* Bodies (:mod:`wsdaemon.broker.relay_wire`) start with the channel name; what
  follows is the payload, or a 4-byte count. Both ends are ours: a malformed
  body is a broken peer (:class:`~wsdaemon.workers.channel.ChannelError`).
* Channels with history: the main process keeps it, in one
  :class:`~wsdaemon.hub.HistoryStore` per set of bounds, as the in-process
  broker does (it outlives worker restarts; a daemon restart starts new
  epochs). A worker's POSITION (question number, the endpoint's
  :class:`~wsdaemon.hub.HubLimits`, channel, payload header and message) is
  positioned, kept and written as a MESSAGE with its position to every
  subscribed worker in one step, then answered with POSITION_ANSWER; a
  HISTORY read is answered with one HISTORY_ENTRY per kept message the fetch
  wants, then HISTORY_ANSWER with the state, so no answer is ever larger than
  the biggest message.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from wsdaemon.broker import payload
from wsdaemon.broker.interface import HistoryUnavailable
from wsdaemon.broker.linked import LinkedBroker
from wsdaemon.broker.local import EXPIRE_INTERVAL_SECONDS, HistoryStores
from wsdaemon.broker.relay_wire import (
    ANSWER,
    HISTORY_ANSWER,
    HISTORY_ENTRY,
    HISTORY_QUERY,
    LIMITS,
    NUMBER,
    POSITION_ANSWER,
    number,
    pack,
    pack_limits,
    unpack,
    unpack_limits,
)
from wsdaemon.core.frames import SharedMessage
from wsdaemon.hub import ChannelState, Fetch, HubLimits, Publication, RecoveryQuery, is_epoch, is_offset
from wsdaemon.workers.channel import MAX_MESSAGE_BYTES, ChannelError, MessageKind, encode

Send = Callable[[bytes], None]


class RelayLink:
    """A worker's link: the channel to its main process (``send`` writes one encoded message)."""

    log = Logger()
    description = "the main process (workers relay)"

    def __init__(self, send: Send) -> None:
        self.send = send
        self.broker: LinkedBroker | None = None
        self._questions: dict[int, Deferred[int]] = {}
        self._positions: dict[int, Deferred[tuple[str, int]]] = {}
        self._reads: dict[
            int, tuple[str, list[tuple[int, bool, bytes]], Deferred[tuple[ChannelState, list[Publication]]]]
        ] = {}
        self._ids = itertools.count(1)
        self._oversize_logged = False

    def start(self, broker: LinkedBroker) -> None:
        """The channel exists as soon as the worker does: up at once."""
        self.broker = broker
        broker.link_up()

    def stop(self) -> Deferred[None]:
        """The channel closes with the process."""
        return succeed(None)

    def publish(self, channel: str, data: bytes) -> None:
        """PUBLISH up; a message too big for the channel reaches this worker only (logged once)."""
        body = pack(channel, data)
        if len(body) > MAX_MESSAGE_BYTES:
            if not self._oversize_logged:
                self._oversize_logged = True
                self.log.warn(
                    "a {size}-byte message is over the workers' relay limit ({limit} bytes): "
                    "it reaches this worker's members only (and so will any such message)",
                    size=len(data),
                    limit=MAX_MESSAGE_BYTES,
                )
            if self.broker is not None:
                self.broker.link_message(channel, data)
            return
        self.send(encode(MessageKind.PUBLISH, body))

    def publish_positioned(
        self, channel: str, header: bytes, data: bytes, limits: HubLimits, epoch: str
    ) -> Deferred[tuple[str, int]]:
        """POSITION up: the main process positions, keeps and relays it; fires with its answer.

        ``epoch`` is not sent: the main process's store makes its own epochs.
        """
        body = pack(channel, header + data)
        if len(body) + payload.POSITION_MAX_BYTES > MAX_MESSAGE_BYTES:
            return fail(
                HistoryUnavailable(
                    f"a {len(data)}-byte message is over the workers' relay limit ({MAX_MESSAGE_BYTES} bytes)"
                )
            )
        question = self._question()
        answer: Deferred[tuple[str, int]] = Deferred()
        self._positions[question] = answer
        self.send(encode(MessageKind.POSITION, NUMBER.pack(question) + pack_limits(limits) + body))
        return answer

    def history(
        self, channel: str, fetch: Fetch, limits: HubLimits, epoch: str
    ) -> Deferred[tuple[ChannelState, list[Publication]]]:
        """HISTORY up: the main process reads its store and answers entry by entry, then with the state."""
        query = fetch.query
        since = query.since if query is not None else -1
        client_epoch = ((query.epoch or "") if query is not None else "").encode("ascii")
        question = self._question()
        answer: Deferred[tuple[ChannelState, list[Publication]]] = Deferred()
        self._reads[question] = (channel, [], answer)
        head = HISTORY_QUERY.pack(question, since, len(client_epoch))
        self.send(encode(MessageKind.HISTORY, head + pack_limits(limits) + client_epoch + pack(channel)))
        return answer

    def _question(self) -> int:
        return next(self._ids) & 0xFFFFFFFF

    def subscribe(self, channel: str) -> None:
        """SUBSCRIBE up; the pipe's order makes it effective for everything sent after it."""
        self.send(encode(MessageKind.SUBSCRIBE, pack(channel)))
        if self.broker is not None:
            self.broker.link_subscribed(channel)

    def unsubscribe(self, channel: str) -> None:
        """UNSUBSCRIBE up."""
        self.send(encode(MessageKind.UNSUBSCRIBE, pack(channel)))

    def members_changed(self, channel: str, count: int) -> None:
        """COUNT up, for presence."""
        self.send(encode(MessageKind.COUNT, pack(channel, NUMBER.pack(count))))

    def presence(self, channel: str) -> Deferred[int]:
        """Ask the main process for the members on every worker."""
        question = self._question()
        answer: Deferred[int] = Deferred()
        self._questions[question] = answer
        self.send(encode(MessageKind.PRESENCE, NUMBER.pack(question) + pack(channel)))
        return answer

    def received(self, kind: MessageKind, body: bytes) -> bool:
        """A message from the main process; False if it is not the relay's.

        Raises:
            ChannelError: a malformed relay body.
        """
        if kind is MessageKind.MESSAGE:
            channel, data = unpack(body)
            if self.broker is not None:
                self.broker.link_message(channel, data)
            return True
        if kind is MessageKind.PRESENCE_ANSWER:
            if len(body) != ANSWER.size:
                raise ChannelError("relay presence answer of the wrong size")
            question, count = ANSWER.unpack(body)
            answer = self._questions.pop(question, None)
            if answer is not None:
                answer.callback(count)
            return True
        if kind is MessageKind.POSITION_ANSWER:
            self._position_answer(body)
            return True
        if kind is MessageKind.HISTORY_ENTRY:
            if len(body) < HISTORY_ENTRY.size:
                raise ChannelError("relay history entry too short")
            question, offset, binary = HISTORY_ENTRY.unpack_from(body)
            read = self._reads.get(question)
            if read is not None:
                read[1].append((offset, binary, body[HISTORY_ENTRY.size :]))
            return True
        if kind is MessageKind.HISTORY_ANSWER:
            self._history_answer(body)
            return True
        return False

    def _position_answer(self, body: bytes) -> None:
        if len(body) < POSITION_ANSWER.size:
            raise ChannelError("relay position answer too short")
        question, offset = POSITION_ANSWER.unpack_from(body)
        epoch = body[POSITION_ANSWER.size :].decode("ascii", "replace")
        if not is_epoch(epoch) or not is_offset(offset):
            raise ChannelError("relay position answer with a malformed position")
        answer = self._positions.pop(question, None)
        if answer is not None:
            answer.callback((epoch, offset))

    def _history_answer(self, body: bytes) -> None:
        if len(body) < HISTORY_ANSWER.size:
            raise ChannelError("relay history answer too short")
        question, first, last = HISTORY_ANSWER.unpack_from(body)
        try:
            state = ChannelState(body[HISTORY_ANSWER.size :].decode("ascii", "replace"), first, last)
        except ValueError as error:
            raise ChannelError(f"relay history answer with an impossible state: {error}") from None
        read = self._reads.pop(question, None)
        if read is not None:
            channel, entries, answer = read
            answer.callback(
                (state, [Publication(channel, state.epoch, offset, data, binary) for offset, binary, data in entries])
            )


def relay_broker(send: Send, max_pending_messages: int) -> LinkedBroker:
    """A worker's broker when the main process relays between workers."""
    return LinkedBroker(RelayLink(send), max_pending_messages)


class RelayHub:
    """The main process's side: which worker subscribes which channel, their member counts, and history.

    Args:
        clock: the reactor (``seconds()`` for history, and its expiry timer); the global one if not given.
    """

    def __init__(self, clock: Any = None) -> None:
        if clock is None:
            from twisted.internet import reactor as clock
        self.writers: dict[int, Send] = {}
        self.subscribers: dict[str, dict[int, None]] = {}
        self.counts: dict[str, dict[int, int]] = {}
        self.history = HistoryStores(clock)
        self._expiry = LoopingCall(self.history.expire)
        self._expiry.clock = clock

    def start(self) -> None:
        """Drop idle history on a timer (the stores also do on every call)."""
        if not self._expiry.running:
            self._expiry.start(EXPIRE_INTERVAL_SECONDS, now=False)

    def stop(self) -> None:
        """Stop the timer."""
        if self._expiry.running:
            self._expiry.stop()

    def attach(self, worker: int, write: Send) -> None:
        """A worker (re)started: ``write`` sends it one encoded message."""
        self.forget(worker)
        self.writers[worker] = write

    def forget(self, worker: int) -> None:
        """A worker is gone: its subscriptions and members with it."""
        self.writers.pop(worker, None)
        for table in (self.subscribers, self.counts):
            for channel in [name for name, workers in table.items() if worker in workers]:
                del table[channel][worker]
                if not table[channel]:
                    del table[channel]

    def received(self, worker: int, kind: MessageKind, body: bytes) -> bool:
        """One message from ``worker``; False if it is not the relay's.

        Raises:
            ChannelError: a malformed relay body.
        """
        if kind is MessageKind.PUBLISH:
            channel, _ = unpack(body)
            self._relay(channel, encode(MessageKind.MESSAGE, body))
        elif kind is MessageKind.POSITION:
            self._position(worker, body)
        elif kind is MessageKind.HISTORY:
            self._read(worker, body)
        elif kind is MessageKind.SUBSCRIBE:
            self.subscribers.setdefault(unpack(body)[0], {})[worker] = None
        elif kind is MessageKind.UNSUBSCRIBE:
            channel = unpack(body)[0]
            self.subscribers.get(channel, {}).pop(worker, None)
            if not self.subscribers.get(channel, True):
                del self.subscribers[channel]
        elif kind is MessageKind.COUNT:
            self._count(worker, *unpack(body))
        elif kind is MessageKind.PRESENCE:
            question, channel = number(body[: NUMBER.size]), unpack(body[NUMBER.size :])[0]
            total = sum(self.counts.get(channel, {}).values())
            write = self.writers.get(worker)
            if write is not None:
                write(encode(MessageKind.PRESENCE_ANSWER, ANSWER.pack(question, total)))
        else:
            return False
        return True

    def _relay(self, channel: str, message: bytes) -> None:
        """Write one encoded message to every worker subscribed to ``channel``."""
        for subscriber in list(self.subscribers.get(channel, ())):
            write = self.writers.get(subscriber)
            if write is not None:
                write(message)

    def _position(self, worker: int, body: bytes) -> None:
        """Position and keep a worker's message, relay it with its position, answer the position."""
        if len(body) < NUMBER.size + LIMITS.size:
            raise ChannelError("relay position request too short")
        question = number(body[: NUMBER.size])
        limits = unpack_limits(body[NUMBER.size : NUMBER.size + LIMITS.size])
        channel, rest = unpack(body[NUMBER.size + LIMITS.size :])
        if len(rest) < payload.HEADER_BYTES or rest[:1] not in (b"P", b"Q"):
            raise ChannelError("relay position request without a positioned payload header")
        header, data = rest[: payload.HEADER_BYTES], rest[payload.HEADER_BYTES :]
        publication = self.history.publish(channel, SharedMessage(payload.header_opcode(header), data), limits)
        position = b"%s %d " % (publication.epoch.encode("ascii"), publication.offset)
        self._relay(channel, encode(MessageKind.MESSAGE, pack(channel, header + position + data)))
        write = self.writers.get(worker)
        if write is not None:
            answer = POSITION_ANSWER.pack(question, publication.offset) + publication.epoch.encode("ascii")
            write(encode(MessageKind.POSITION_ANSWER, answer))

    def _read(self, worker: int, body: bytes) -> None:
        """Answer a worker's history read: each entry the fetch wants, then the state."""
        if len(body) < HISTORY_QUERY.size + LIMITS.size:
            raise ChannelError("relay history request too short")
        question, since, epoch_size = HISTORY_QUERY.unpack_from(body)
        at = HISTORY_QUERY.size
        limits = unpack_limits(body[at : at + LIMITS.size])
        at += LIMITS.size
        client_epoch = body[at : at + epoch_size].decode("ascii", "replace")
        channel = unpack(body[at + epoch_size :])[0]
        if since < 0:
            query = None
        elif is_offset(since) and (not client_epoch or is_epoch(client_epoch)):
            query = RecoveryQuery(since, client_epoch or None)
        else:
            raise ChannelError("relay history request with a malformed position")
        state, entries = self.history.answer(Fetch(channel, query), limits)
        write = self.writers.get(worker)
        if write is None:
            return
        for entry in entries:
            write(
                encode(
                    MessageKind.HISTORY_ENTRY, HISTORY_ENTRY.pack(question, entry.offset, entry.binary) + entry.payload
                )
            )
        answer = HISTORY_ANSWER.pack(question, state.first_offset, state.last_offset) + state.epoch.encode("ascii")
        write(encode(MessageKind.HISTORY_ANSWER, answer))

    def _count(self, worker: int, channel: str, data: bytes) -> None:
        count = number(data)
        if count:
            self.counts.setdefault(channel, {})[worker] = count
        else:
            self.counts.get(channel, {}).pop(worker, None)
            if not self.counts.get(channel, True):
                del self.counts[channel]
