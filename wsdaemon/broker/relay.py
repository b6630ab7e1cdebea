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
* Bodies start with the channel name (2-byte length, UTF-8); what follows is the
  payload, or a 4-byte count. Both ends are ours: a malformed body is a broken
  peer (:class:`~wsdaemon.workers.channel.ChannelError`).
"""

from __future__ import annotations

import itertools
import struct
from collections.abc import Callable

from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger

from wsdaemon.broker.linked import LinkedBroker
from wsdaemon.workers.channel import MAX_MESSAGE_BYTES, ChannelError, MessageKind, encode

_NAME = struct.Struct("!H")
_NUMBER = struct.Struct("!I")
_ANSWER = struct.Struct("!II")
Send = Callable[[bytes], None]


def pack(channel: str, rest: bytes = b"") -> bytes:
    """A body: the channel name, then ``rest``."""
    name = channel.encode("utf-8")
    return _NAME.pack(len(name)) + name + rest


def unpack(body: bytes) -> tuple[str, bytes]:
    """The channel name and the rest of a body.

    Raises:
        ChannelError: too short, or a name that is not UTF-8.
    """
    if len(body) < _NAME.size:
        raise ChannelError("relay body without a channel name")
    (size,) = _NAME.unpack_from(body)
    if len(body) < _NAME.size + size:
        raise ChannelError("relay body shorter than its channel name")
    try:
        return body[_NAME.size : _NAME.size + size].decode("utf-8"), body[_NAME.size + size :]
    except UnicodeDecodeError:
        raise ChannelError("relay channel name is not UTF-8") from None


def _number(data: bytes) -> int:
    if len(data) != _NUMBER.size:
        raise ChannelError("relay count of the wrong size")
    value: int = _NUMBER.unpack(data)[0]
    return value


class RelayLink:
    """A worker's link: the channel to its main process (``send`` writes one encoded message)."""

    log = Logger()
    description = "the main process (workers relay)"

    def __init__(self, send: Send) -> None:
        self.send = send
        self.broker: LinkedBroker | None = None
        self._questions: dict[int, Deferred[int]] = {}
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
        self.send(encode(MessageKind.COUNT, pack(channel, _NUMBER.pack(count))))

    def presence(self, channel: str) -> Deferred[int]:
        """Ask the main process for the members on every worker."""
        question = next(self._ids) & 0xFFFFFFFF
        answer: Deferred[int] = Deferred()
        self._questions[question] = answer
        self.send(encode(MessageKind.PRESENCE, _NUMBER.pack(question) + pack(channel)))
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
            if len(body) != _ANSWER.size:
                raise ChannelError("relay presence answer of the wrong size")
            question, count = _ANSWER.unpack(body)
            answer = self._questions.pop(question, None)
            if answer is not None:
                answer.callback(count)
            return True
        return False


def relay_broker(send: Send, max_pending_messages: int) -> LinkedBroker:
    """A worker's broker when the main process relays between workers."""
    return LinkedBroker(RelayLink(send), max_pending_messages)


class RelayHub:
    """The main process's side: which worker subscribes which channel, and their member counts."""

    def __init__(self) -> None:
        self.writers: dict[int, Send] = {}
        self.subscribers: dict[str, dict[int, None]] = {}
        self.counts: dict[str, dict[int, int]] = {}

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
            message = encode(MessageKind.MESSAGE, body)
            for subscriber in list(self.subscribers.get(channel, ())):
                write = self.writers.get(subscriber)
                if write is not None:
                    write(message)
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
            question, channel = _number(body[: _NUMBER.size]), unpack(body[_NUMBER.size :])[0]
            total = sum(self.counts.get(channel, {}).values())
            write = self.writers.get(worker)
            if write is not None:
                write(encode(MessageKind.PRESENCE_ANSWER, _ANSWER.pack(question, total)))
        else:
            return False
        return True

    def _count(self, worker: int, channel: str, data: bytes) -> None:
        count = _number(data)
        if count:
            self.counts.setdefault(channel, {})[worker] = count
        else:
            self.counts.get(channel, {}).pop(worker, None)
            if not self.counts.get(channel, True):
                del self.counts[channel]
