"""The message channel between the main process and each worker: framing, kinds, the hello.

Rules for this file:

* One pair of pipes per worker, made by ``spawnProcess``: the worker reads messages on its
  fd 0 (:data:`FROM_SUPERVISOR_FD`) and writes messages on its fd 3
  (:data:`TO_SUPERVISOR_FD`); listening sockets follow from fd 4 (:data:`FIRST_SOCKET_FD`).
* A message is a 4-byte big-endian length, one kind byte, then the body. Bodies are bytes, so
  binary payloads (the relay of broadcast messages between workers comes next) need no escaping.
  A length over :data:`MAX_MESSAGE_BYTES` or an unknown kind is a broken peer: the channel fails.
* The supervisor's first message is the :data:`MessageKind.HELLO` (JSON): the worker's number,
  its heartbeat interval, and the listeners behind each inherited socket. A worker reports with
  :data:`MessageKind.NOTIFY`: sd_notify(3) text (``READY=1``, ``STATUS=…``,
  ``WATCHDOG=1`` as the heartbeat), so a worker reports to its supervisor as the single process
  reports to systemd, through the same :class:`~wsdaemon.systemd.Notifier`. The other kinds
  carry broadcast channels between the workers (:mod:`wsdaemon.broker.relay`) and the figures
  of ``/metrics`` (:mod:`wsdaemon.workers.metrics`).

Pure: no Twisted, no I/O except :func:`read_message`, which the worker calls once, before its
reactor runs, to learn where its sockets are.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import os
import struct
from dataclasses import dataclass
from typing import Any

from wsdaemon.config import ListenerConfig, SNIConfig, TLSConfig

FROM_SUPERVISOR_FD = 0
TO_SUPERVISOR_FD = 3
FIRST_SOCKET_FD = 4

#: The largest message body either side accepts (room for a broadcast message of the default
#: ``max_message_bytes``, 1 MiB, with its envelope). Internal: both ends are ours.
MAX_MESSAGE_BYTES = 2 * 1024 * 1024

_HEAD = struct.Struct("!IB")  # body length + 1 (the kind byte), kind


@enum.unique
class MessageKind(enum.Enum):
    """What a message carries; the value is its kind byte on the wire."""

    HELLO = b"H"  # supervisor -> worker, once: JSON (see Hello)
    NOTIFY = b"N"  # worker -> supervisor: sd_notify text
    # The broadcast relay (wsdaemon.broker.relay): channels across the workers of one host.
    SUBSCRIBE = b"S"  # worker -> supervisor: a channel it has members in
    UNSUBSCRIBE = b"U"  # worker -> supervisor: a channel it has no member in any more
    PUBLISH = b"P"  # worker -> supervisor: a payload for every worker subscribed to its channel
    MESSAGE = b"M"  # supervisor -> worker: a payload on a channel it subscribed
    COUNT = b"C"  # worker -> supervisor: its member count of a channel (presence)
    PRESENCE = b"Q"  # worker -> supervisor: how many members a channel has on all workers?
    PRESENCE_ANSWER = b"A"  # supervisor -> worker: the answer
    # Channels with history across the workers: the supervisor keeps it and gives the positions.
    POSITION = b"O"  # worker -> supervisor: position, keep and relay a message (a positioned publish)
    POSITION_ANSWER = b"o"  # supervisor -> worker: the position it got
    HISTORY = b"G"  # worker -> supervisor: read a channel's state and history
    HISTORY_ENTRY = b"E"  # supervisor -> worker: one kept message of the history read
    HISTORY_ANSWER = b"r"  # supervisor -> worker: the channel's state, after its entries
    # /metrics across the workers (wsdaemon.workers.metrics).
    STATS = b"T"  # worker -> supervisor: its figures (JSON), with each heartbeat
    STATS_QUERY = b"R"  # worker -> supervisor: every worker's latest figures, please (a query number)
    STATS_ANSWER = b"W"  # supervisor -> worker: the answer (JSON: the number and the figures by worker)


class ChannelError(Exception):
    """The other end sent something no wsdaemon process sends: the channel cannot go on."""


def encode(kind: MessageKind, body: bytes) -> bytes:
    """One message on the wire."""
    if len(body) > MAX_MESSAGE_BYTES:
        raise ValueError(f"channel message of {len(body)} bytes; at most {MAX_MESSAGE_BYTES}")
    return _HEAD.pack(len(body) + 1, kind.value[0]) + body


class MessageDecoder:
    """Incremental decoder: bytes in, whole ``(kind, body)`` messages out."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[tuple[MessageKind, bytes]]:
        """The messages completed by ``data``.

        Raises:
            ChannelError: a length over :data:`MAX_MESSAGE_BYTES` or an unknown kind.
        """
        self._buffer += data
        messages = []
        while len(self._buffer) >= _HEAD.size:
            length, kind_byte = _HEAD.unpack_from(self._buffer)
            if not 1 <= length <= MAX_MESSAGE_BYTES + 1:
                raise ChannelError(f"message length {length - 1} out of range")
            if len(self._buffer) < 4 + length:
                break
            messages.append((_kind(kind_byte), bytes(self._buffer[_HEAD.size : 4 + length])))
            del self._buffer[: 4 + length]
        return messages


def _kind(value: int) -> MessageKind:
    try:
        return MessageKind(bytes([value]))
    except ValueError:
        raise ChannelError(f"unknown message kind {value!r}") from None


def read_message(fd: int) -> tuple[MessageKind, bytes]:
    """Read exactly one message from ``fd``, blocking (the worker's hello, before its reactor runs).

    Raises:
        ChannelError: the channel ended first, or sent a bad message.
    """
    head = _read_exactly(fd, _HEAD.size)
    length, kind_byte = _HEAD.unpack(head)
    if not 1 <= length <= MAX_MESSAGE_BYTES + 1:
        raise ChannelError(f"message length {length - 1} out of range")
    return _kind(kind_byte), _read_exactly(fd, length - 1)


def _read_exactly(fd: int, size: int) -> bytes:
    chunks, left = [], size
    while left:
        chunk = os.read(fd, left)
        if not chunk:
            raise ChannelError("the supervisor closed the channel before its hello")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


@dataclass(frozen=True)
class Hello:
    """What a worker learns from its supervisor before it builds its service.

    ``listeners`` are the main process's listeners, in its order: listener ``i`` is the
    socket on fd ``FIRST_SOCKET_FD + i``. They are the ones the main process opened, so a
    worker started after the file changed still serves exactly those sockets.
    """

    worker: int
    heartbeat_interval_seconds: float
    listeners: tuple[ListenerConfig, ...]

    def encode(self) -> bytes:
        """The HELLO message."""
        body = {
            "worker": self.worker,
            "heartbeat_interval_seconds": self.heartbeat_interval_seconds,
            "listeners": [dataclasses.asdict(listener) for listener in self.listeners],
        }
        return encode(MessageKind.HELLO, json.dumps(body).encode("utf-8"))

    @classmethod
    def decode(cls, body: bytes) -> Hello:
        """The hello from a HELLO body.

        Raises:
            ChannelError: the body is not a hello.
        """
        try:
            data = json.loads(body)
            listeners = tuple(_listener(item) for item in data["listeners"])
            return cls(int(data["worker"]), float(data["heartbeat_interval_seconds"]), listeners)
        except (ValueError, KeyError, TypeError) as error:
            raise ChannelError(f"bad hello: {error}") from None


def _listener(item: dict[str, Any]) -> ListenerConfig:
    tls = item["tls"]
    if tls is None:
        return ListenerConfig(item["endpoint"])
    sni = tuple(SNIConfig(**entry) for entry in tls.pop("sni"))
    return ListenerConfig(item["endpoint"], TLSConfig(sni=sni, **tls))


def socket_fd(index: int) -> int:
    """The worker's fd of listener ``index`` (0-based)."""
    return FIRST_SOCKET_FD + index
