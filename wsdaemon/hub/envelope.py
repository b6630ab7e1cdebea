"""The opt-in JSON envelope (``envelope = "json"``): messages and notices on the wire.

Rules for this file:

* Every WebSocket message the server sends on an envelope endpoint is one
  JSON object in a *text* message. An object **without** ``"type"`` is a
  published message; one **with** ``"type"`` is a notice.
* A message carries ``channel``, ``epoch``, ``offset`` and exactly one of
  ``data`` (a text message, as a JSON string) or ``b64`` (a binary message,
  standard base64 with padding)::

      {"channel":"/chat/room1","epoch":"6743a1f0-9c1e2b3a4d5f6a7b","offset":42,"data":"hello"}

* A notice tells the client where the stream continues: after it, the next
  message has ``offset + 1`` in ``epoch`` (see :class:`NoticeType`; a
  ``heartbeat`` repeats the position the client already has)::

      {"type":"not_recovered","channel":"/chat/room1","epoch":"...","offset":17,"reason":"expired"}

* Encoding is cheap because it runs once per published message per process:
  the JSON is assembled from pre-quoted pieces (the C string encoder), not
  through ``json.dumps`` of a dict. Parsing is for clients and checks
  everything, raising only :class:`~wsdaemon.hub.errors.InvalidEnvelope`.
* Unknown fields are ignored and unknown notice types raise
  :class:`~wsdaemon.hub.errors.UnknownEnvelope`, so a newer server can add both.
"""

from __future__ import annotations

import binascii
import json
from base64 import b64decode, b64encode
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from wsdaemon.hub.errors import InvalidEnvelope, UnknownEnvelope
from wsdaemon.hub.positions import is_epoch, is_offset

#: A JSON string literal for a str, by the C encoder (``JSONEncoder.encode`` has a fast path for str).
_quote = json.JSONEncoder(ensure_ascii=False).encode


class NoticeType(StrEnum):
    """The notice types: how a subscription starts, how a gap is announced, and that the link is alive.

    The first three are also the outcomes of the recovery decision.
    """

    #: No recovery was asked: live messages follow, after ``offset``.
    SUBSCRIBED = "subscribed"
    #: Recovery worked: every message after the client's ``offset`` follows, history then live, none missing.
    RECOVERED = "recovered"
    #: Some messages after the client's position are lost; what follows starts after ``offset``.
    NOT_RECOVERED = "not_recovered"
    #: Nothing happened: the link is alive, and the position of the last message sent is ``offset``.
    #: Browsers cannot see WebSocket pings, so on a quiet channel this is how they notice a dead link.
    HEARTBEAT = "heartbeat"


_NOTICE_TYPES = frozenset(kind.value for kind in NoticeType)


class Reason(StrEnum):
    """Why a client was not recovered (the ``reason`` of a ``not_recovered`` notice)."""

    #: The query had ``since`` but no ``epoch``: every retained message follows.
    NO_EPOCH = "no_epoch"
    #: The channel's history was lost since (daemon restart, Redis flushed, channel expired or evicted).
    EPOCH_CHANGED = "epoch_changed"
    #: The messages after the client's offset are no longer all in history.
    EXPIRED = "expired"
    #: The client's offset is beyond the channel's last one (a client bug, or a server that lost its state).
    AHEAD = "ahead"
    #: Messages were lost on the way (e.g. a broker link dropped) and are not in history either.
    GAP = "gap"


class Publication:
    """One published message with its position: what history keeps and subscribers receive.

    A plain class with slots rather than a frozen dataclass so that it can
    cache its envelope: a message is encoded once however many subscribers
    (live or replaying) it reaches.

    Args:
        channel: the channel's name.
        epoch: the channel's epoch when the message was published.
        offset: the message's offset in that epoch.
        payload: the message; UTF-8 text unless ``binary``.
        binary: whether it was a binary message.
    """

    __slots__ = ("_envelope", "binary", "channel", "epoch", "offset", "payload")

    def __init__(self, channel: str, epoch: str, offset: int, payload: bytes, binary: bool = False) -> None:
        self.channel = channel
        self.epoch = epoch
        self.offset = offset
        self.payload = payload
        self.binary = binary
        self._envelope: bytes | None = None

    @property
    def data(self) -> str | bytes:
        """The message as the publisher sent it: ``str`` for text, ``bytes`` for binary."""
        return self.payload if self.binary else self.payload.decode("utf-8")

    def envelope(self) -> bytes:
        """The JSON envelope (UTF-8), encoded on the first call and reused after."""
        if self._envelope is None:
            self._envelope = encode_publication(self)
        return self._envelope

    def _key(self) -> tuple[str, str, int, bytes, bool]:
        return (self.channel, self.epoch, self.offset, self.payload, self.binary)

    def __eq__(self, other: object) -> bool:
        """Equal when every field is (the cached envelope does not count)."""
        return isinstance(other, Publication) and self._key() == other._key()

    def __hash__(self) -> int:
        """Hash of the fields, consistent with ``__eq__``."""
        return hash(self._key())

    def __repr__(self) -> str:
        """The fields, for test failures and logs."""
        return f"Publication({self.channel!r}, {self.epoch!r}, {self.offset}, {self.payload!r}, binary={self.binary})"


@dataclass(frozen=True, slots=True)
class Notice:
    """A notice: where the stream continues, and why.

    Attributes:
        type: what happened (:class:`NoticeType`).
        channel: the channel's name.
        epoch: the channel's epoch from now on.
        offset: the next message has ``offset + 1`` (in ``epoch``).
        reason: for ``not_recovered``, a :class:`Reason` value (a client may
            see a newer server's reason it does not know: any string).
    """

    type: NoticeType
    channel: str
    epoch: str
    offset: int
    reason: str | None = None


def encode_publication(publication: Publication) -> bytes:
    """The envelope of a published message, as UTF-8 JSON (call :meth:`Publication.envelope` to cache it).

    Raises:
        UnicodeDecodeError: a text payload that is not UTF-8 (a caller bug:
            the core validates text messages, a broker must mark binary ones).
    """
    if publication.binary:
        body = '"b64":"' + b64encode(publication.payload).decode("ascii") + '"'
    else:
        body = '"data":' + _quote(publication.payload.decode("utf-8"))
    head = (
        f'{{"channel":{_quote(publication.channel)},"epoch":{_quote(publication.epoch)},"offset":{publication.offset},'
    )
    return (head + body + "}").encode("utf-8")


def encode_notice(notice: Notice) -> bytes:
    """The envelope of a notice, as UTF-8 JSON (rare: plain ``json.dumps``)."""
    fields: dict[str, Any] = {
        "type": str(notice.type),
        "channel": notice.channel,
        "epoch": notice.epoch,
        "offset": notice.offset,
    }
    if notice.reason is not None:
        fields["reason"] = str(notice.reason)
    return json.dumps(fields, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def parse_envelope(message: str | bytes) -> Publication | Notice:
    """What one message of an envelope endpoint says (for clients).

    Args:
        message: the text message as received (``str``, or its UTF-8 bytes).

    Returns:
        A :class:`Publication` or a :class:`Notice`.

    Raises:
        UnknownEnvelope: a notice ``type`` this version does not know (ignore it).
        InvalidEnvelope: anything else that is not a valid envelope.
    """
    try:
        text = message.decode("utf-8") if isinstance(message, bytes) else message
        value = json.loads(text)
    except (ValueError, RecursionError) as error:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise InvalidEnvelope(f"not JSON: {error}") from None
    if not isinstance(value, dict):
        raise InvalidEnvelope("not a JSON object")
    channel, epoch, offset = value.get("channel"), value.get("epoch"), value.get("offset")
    if not isinstance(channel, str):
        raise InvalidEnvelope("channel must be a string")
    if not is_epoch(epoch):
        raise InvalidEnvelope("epoch must be a well-formed epoch string")
    if not is_offset(offset):
        raise InvalidEnvelope("offset must be an integer from 0 to 2**53 - 1")
    if "type" in value:
        return _parse_notice(value, channel, epoch, offset)
    return _parse_publication(value, channel, epoch, offset)


def _parse_notice(value: dict[str, Any], channel: str, epoch: str, offset: int) -> Notice:
    kind, reason = value["type"], value.get("reason")
    if not isinstance(kind, str):
        raise InvalidEnvelope("type must be a string")
    if kind not in _NOTICE_TYPES:
        raise UnknownEnvelope(kind)
    if reason is not None and not isinstance(reason, str):
        raise InvalidEnvelope("reason must be a string")
    return Notice(NoticeType(kind), channel, epoch, offset, reason)


def _parse_publication(value: dict[str, Any], channel: str, epoch: str, offset: int) -> Publication:
    if offset == 0:
        raise InvalidEnvelope("a message's offset is at least 1")
    data, b64 = value.get("data"), value.get("b64")
    if (data is None) == (b64 is None):
        raise InvalidEnvelope("a message has exactly one of data and b64")
    if data is not None:
        if not isinstance(data, str):
            raise InvalidEnvelope("data must be a string")
        try:
            return Publication(channel, epoch, offset, data.encode("utf-8"))
        except UnicodeEncodeError:
            raise InvalidEnvelope("data must be valid Unicode (no lone surrogates)") from None
    if not isinstance(b64, str):
        raise InvalidEnvelope("b64 must be a string")
    try:
        return Publication(channel, epoch, offset, b64decode(b64, validate=True), binary=True)
    except (binascii.Error, ValueError):
        raise InvalidEnvelope("b64 must be standard base64") from None
