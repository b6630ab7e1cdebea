"""The idle timeout, the keepalive and the credential expiry of one connection, as plain deadlines.

The shared :class:`~wsdaemon.adapter.deadlines.Ticker` asks :meth:`Heartbeat.due`
once a second what is due; the wire protocol does it. Keeping the numbers in one
small slotted object (no timer per connection) is what keeps an idle connection
at a few KiB.
"""

from __future__ import annotations

from enum import Enum

from wsdaemon.core import Limits


class Due(Enum):
    """What a tick found to do."""

    NOTHING = "nothing"
    CLOSE_IDLE = "close idle"  # no message either way for idle_timeout_seconds (1001)
    PING = "ping"  # ping_interval_seconds since the last pong
    KEEPALIVE_TIMEOUT = "keepalive timeout"  # no pong within pong_timeout_seconds (1011)
    CREDENTIALS_EXPIRED = "credentials expired"  # the identity's expires_at passed (close_on_expiry: 1008)


class Heartbeat:
    """Deadlines of one connection; pings and pongs never count as activity."""

    __slots__ = (
        "count",
        "expires_at",
        "idle_seen",
        "idle_since",
        "keepalive",
        "limits",
        "next_ping_at",
        "payload",
        "pong_deadline",
        "rtt",
        "sent_at",
    )

    def __init__(self, limits: Limits, keepalive: bool, now: float, expires_at: float | None = None) -> None:
        self.limits = limits
        self.expires_at = expires_at  # when the credential runs out (close_on_expiry), or None
        self.keepalive = keepalive  # the server pings; the client only answers
        self.idle_seen = (0, 0)  # (messages in, messages out) at the last tick
        self.idle_since = now
        self.payload: bytes | None = None  # the ping awaiting its pong
        self.count = 0
        self.next_ping_at = now + limits.ping_interval_seconds
        self.pong_deadline = 0.0
        self.sent_at = 0.0  # when the ping awaiting its pong went out
        self.rtt = 0.0  # seconds from our last answered keepalive ping to its pong (for metrics)

    def due(self, now: float, messages: tuple[int, int]) -> Due:
        """What is due at ``now``, given the message counts so far (an expired credential first)."""
        if self.expires_at is not None and now >= self.expires_at:
            return Due.CREDENTIALS_EXPIRED
        if messages != self.idle_seen:
            self.idle_seen, self.idle_since = messages, now
        elif now - self.idle_since >= self.limits.idle_timeout_seconds:
            return Due.CLOSE_IDLE
        if not self.keepalive:
            return Due.NOTHING
        if self.payload is None:
            return Due.PING if now >= self.next_ping_at else Due.NOTHING
        return Due.KEEPALIVE_TIMEOUT if now >= self.pong_deadline else Due.NOTHING

    def next_ping(self, now: float) -> bytes:
        """The payload of the keepalive ping sent now; the peer has ``pong_timeout_seconds``."""
        self.count += 1
        self.payload = b"keepalive %d" % self.count
        self.sent_at = now
        self.pong_deadline = now + self.limits.pong_timeout_seconds
        return self.payload

    def answered(self, payload: bytes, now: float) -> bool:
        """Whether ``payload`` answers our keepalive ping; if so the next ping is scheduled and ``rtt`` set.

        RFC 6455 §5.5.3: a Pong echoes the Ping's payload, so a handler's own
        pings (any other payload) are not taken for ours.
        """
        if self.payload is None or payload != self.payload:
            return False
        self.payload = None
        self.rtt = now - self.sent_at
        self.next_ping_at = now + self.limits.ping_interval_seconds
        return True
