"""Channel history in Redis: the keys, the two Lua scripts, their arguments and their answers.

Rules for this file:

* A channel ``/chat/room1`` with history has three keys (``PREFIX`` is
  ``[broker] prefix``): ``PREFIXhistory:epoch:/chat/room1`` (its epoch, a
  string), ``PREFIXhistory:offset:/chat/room1`` (its last offset, an integer)
  and ``PREFIXhistory:stream:/chat/room1`` (a Stream of the kept messages; an
  entry's ID is ``OFFSET-0`` and its one field ``p`` is the message as a
  ``t``/``b`` payload of :mod:`wsdaemon.broker.payload`).
* :data:`PUBLISH_SCRIPT` does a positioned publish in one atomic step, so no
  two processes or hosts can reorder offsets, history and delivery: it gives
  the next offset (``INCR``), appends to the stream (``XADD ... MAXLEN ~
  history_size``; with ``history_size`` 0, or a message over
  ``history_max_bytes``, the stream is deleted instead, so history never has
  a hole), renews the three keys' TTL (``history_ttl_seconds``) and
  ``PUBLISH``-es the positioned payload.
* A channel whose epoch or offset key is missing (never used, expired,
  flushed, evicted) starts a new *record* in either script: the caller's fresh
  epoch, offset 0, no stream. So after ``FLUSHALL`` every channel gets a new
  epoch and no client is told it recovered across the loss. An offset past
  2**53-1 starts a new record too, as in :class:`~wsdaemon.hub.HistoryStore`.
* :data:`HISTORY_SCRIPT` reads the epoch, the last offset, the oldest kept
  offset and the entries a :class:`~wsdaemon.hub.Fetch` may want, in one
  step. It returns every kept entry after the client's offset when its epoch
  is current and its offset within the kept range, else every kept entry;
  :func:`history_answer` then keeps exactly those after
  :meth:`~wsdaemon.hub.Fetch.after` of the state read.
* ``history_max_bytes`` is applied when reading: only the newest entries
  whose payloads fit in it count as kept (the state's first offset says so),
  so a read's answer is bounded by it however large the stream is.
* Nothing here does I/O: :mod:`wsdaemon.broker.redis` runs the scripts
  (``EVALSHA``, falling back to ``EVAL`` on ``NOSCRIPT``).
"""

from __future__ import annotations

from typing import Any

from wsdaemon.broker import payload
from wsdaemon.broker.interface import HistoryUnavailable
from wsdaemon.core.frames import Opcode
from wsdaemon.hub import MAX_OFFSET, ChannelState, Fetch, HubLimits, Publication, is_epoch, is_offset

# Shared by both scripts: start a new record (KEYS 1-3, ARGV[1] the fresh epoch, ARGV[2] the TTL in ms).
_NEW_RECORD = """
local function new_record()
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  redis.call('SET', KEYS[2], 0, 'PX', ARGV[2])
  redis.call('DEL', KEYS[3])
  return ARGV[1]
end
local epoch = redis.call('GET', KEYS[1])
if (not epoch) or redis.call('EXISTS', KEYS[2]) == 0 then
  epoch = new_record()
end
"""

#: KEYS: epoch, offset, stream. ARGV: fresh epoch, TTL ms, history_size, keep (1/0), header, t/b, message,
#: Redis channel, MAX_OFFSET. Returns {epoch, offset}.
PUBLISH_SCRIPT = (
    _NEW_RECORD
    + """
local offset = redis.call('INCR', KEYS[2])
if offset > tonumber(ARGV[9]) then
  epoch = new_record()
  offset = redis.call('INCR', KEYS[2])
end
local id = string.format('%d', offset)
if tonumber(ARGV[3]) > 0 and ARGV[4] == '1' then
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[3], id .. '-0', 'p', ARGV[6] .. ARGV[7])
  redis.call('PEXPIRE', KEYS[3], ARGV[2])
else
  redis.call('DEL', KEYS[3])
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
redis.call('PUBLISH', ARGV[8], ARGV[5] .. epoch .. ' ' .. id .. ' ' .. ARGV[7])
return {epoch, offset}
"""
)

#: KEYS: epoch, offset, stream. ARGV: fresh epoch, TTL ms, the client's epoch ('' if none), its offset
#: (-1: no entries wanted), the byte budget. Returns {epoch, last offset, first kept offset, entries}.
#: The entries are walked newest first, 100 at a time, down to the oldest one wanted or until the
#: budget is spent: then the oldest that fit is the first kept offset, as the in-process ring would say.
HISTORY_SCRIPT = (
    _NEW_RECORD
    + """
local last = tonumber(redis.call('GET', KEYS[2]))
local first = last + 1
local head = redis.call('XRANGE', KEYS[3], '-', '+', 'COUNT', 1)
if #head > 0 then
  first = tonumber(string.match(head[1][1], '^%d+'))
end
local since = tonumber(ARGV[4])
if since < 0 then
  return {epoch, string.format('%d', last), string.format('%d', first), {}}
end
local wanted = first
if ARGV[3] == epoch and since >= first - 1 and since <= last then
  wanted = since + 1
end
local budget = tonumber(ARGV[5])
local bytes = 0
local oldest = last + 1
local newest_first = {}
local cursor = '+'
local done = wanted > last
while not done do
  local chunk = redis.call('XREVRANGE', KEYS[3], cursor, '-', 'COUNT', 100)
  done = #chunk < 100
  for _, entry in ipairs(chunk) do
    local offset = tonumber(string.match(entry[1], '^%d+'))
    if offset < wanted then
      done = true
      break
    end
    local size = #entry[2][2] - 1
    if bytes + size > budget then
      first = oldest
      done = true
      break
    end
    bytes = bytes + size
    oldest = offset
    newest_first[#newest_first + 1] = entry
  end
  cursor = string.format('%d-0', oldest - 1)
end
local entries = {}
for i = #newest_first, 1, -1 do
  entries[#entries + 1] = newest_first[i]
end
return {epoch, string.format('%d', last), string.format('%d', first), entries}
"""
)


def history_keys(prefix: str, channel: str) -> list[bytes]:
    """The epoch, offset and stream keys of ``channel``."""
    return [f"{prefix}history:{kind}:{channel}".encode() for kind in ("epoch", "offset", "stream")]


def ttl_ms(limits: HubLimits) -> bytes:
    """``history_ttl_seconds`` in whole milliseconds (at least 1), as a script argument."""
    return b"%d" % max(1, round(limits.history_ttl_seconds * 1000))


def publish_args(redis_channel: bytes, header: bytes, data: bytes, limits: HubLimits, epoch: str) -> list[bytes]:
    """The ARGV of :data:`PUBLISH_SCRIPT` for one message (``header`` from :func:`payload.positioned_header`)."""
    keep = len(data) <= min(limits.history_max_bytes, limits.history_total_max_bytes)
    kind = b"t" if payload.header_opcode(header) == Opcode.TEXT else b"b"
    return [
        epoch.encode("ascii"),
        ttl_ms(limits),
        b"%d" % limits.history_size,
        b"1" if keep else b"0",
        header,
        kind,
        data,
        redis_channel,
        b"%d" % MAX_OFFSET,
    ]


def position_answer(reply: Any) -> tuple[str, int]:
    """The (epoch, offset) :data:`PUBLISH_SCRIPT` returned.

    Raises:
        HistoryUnavailable: not an epoch and an offset (someone else wrote the keys).
    """
    try:
        raw_epoch, raw_offset = reply
        epoch, offset = _text(raw_epoch), int(raw_offset)
    except (TypeError, ValueError):
        raise HistoryUnavailable("the broker gave a malformed position") from None
    if not is_epoch(epoch) or not is_offset(offset):
        raise HistoryUnavailable("the broker gave a malformed position")
    return epoch, offset


def history_args(limits: HubLimits, fetch: Fetch, epoch: str) -> list[bytes]:
    """The ARGV of :data:`HISTORY_SCRIPT` for ``fetch``."""
    query = fetch.query
    client_epoch = (query.epoch or "") if query is not None else ""
    since = query.since if query is not None else -1
    budget = min(limits.history_max_bytes, limits.history_total_max_bytes)
    return [epoch.encode("ascii"), ttl_ms(limits), client_epoch.encode("ascii"), b"%d" % since, b"%d" % budget]


def history_answer(reply: Any, channel: str, fetch: Fetch) -> tuple[ChannelState, list[Publication]]:
    """The state and the entries ``fetch`` wants, from what :data:`HISTORY_SCRIPT` returned.

    An entry that is not a message (someone else wrote the stream) is left out:
    the subscription then sees a hole and tells its client, never a wrong message.

    Raises:
        HistoryUnavailable: a malformed state (someone else wrote the keys).
    """
    try:
        raw_epoch, raw_last, raw_first, raw_entries = reply
        state = ChannelState(_text(raw_epoch), int(raw_first), int(raw_last))
    except (TypeError, ValueError):
        raise HistoryUnavailable("the broker gave a malformed history state") from None
    after = fetch.after(state)
    entries: list[Publication] = []
    for entry in raw_entries:
        publication = _entry(channel, state, entry)
        if publication is not None and after < publication.offset <= state.last_offset:
            entries.append(publication)
    return state, entries


def _entry(channel: str, state: ChannelState, entry: Any) -> Publication | None:
    """One stream entry ``[b"OFFSET-0", [b"p", PAYLOAD]]`` as a message, or None if it is not one."""
    try:
        raw_id, fields = entry
        offset = int(_text(raw_id).partition("-")[0])
        decoded = payload.decode(dict(zip(fields[::2], fields[1::2], strict=True))[b"p"])
    except (TypeError, ValueError, KeyError):  # MalformedPayload is a ValueError
        return None
    return Publication(channel, state.epoch, offset, decoded.data, decoded.opcode == Opcode.BINARY)


def _text(value: Any) -> str:
    """A reply's bytes as ASCII text (ValueError if they are not)."""
    if isinstance(value, bytes):
        return value.decode("ascii")
    if isinstance(value, str):
        return value
    raise ValueError(f"expected a string, got {type(value).__name__}")
