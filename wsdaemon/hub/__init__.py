"""Sans-I/O pub/sub bookkeeping: channels, offsets, epochs, history, recovery, the envelope.

Like :mod:`wsdaemon.core`, this package is stdlib only: no Twisted, no
reactor, no clock (time and randomness are passed in), no Redis. The
``broadcast`` handler and the brokers use it; it decides, they do the I/O.
"""

from wsdaemon.hub.channels import MAX_CHANNEL_BYTES, channel_problem, check_channel, join_channel
from wsdaemon.hub.envelope import (
    Notice,
    NoticeType,
    Publication,
    Reason,
    encode_notice,
    encode_publication,
    parse_envelope,
)
from wsdaemon.hub.errors import InvalidChannel, InvalidEnvelope, InvalidRecoveryQuery, UnknownEnvelope
from wsdaemon.hub.history import HistoryStore
from wsdaemon.hub.limits import HubLimits, hub_limit_help, hub_limit_ranges
from wsdaemon.hub.positions import (
    FIRST_OFFSET,
    MAX_EPOCH_CHARS,
    MAX_OFFSET,
    ChannelState,
    is_epoch,
    is_offset,
    make_epoch,
)
from wsdaemon.hub.recovery import Decision, RecoveryQuery, decide, parse_recovery_query
from wsdaemon.hub.subscription import Action, Fetch, Phase, Subscription

__all__ = [
    "FIRST_OFFSET",
    "MAX_CHANNEL_BYTES",
    "MAX_EPOCH_CHARS",
    "MAX_OFFSET",
    "Action",
    "ChannelState",
    "Decision",
    "Fetch",
    "HistoryStore",
    "HubLimits",
    "InvalidChannel",
    "InvalidEnvelope",
    "InvalidRecoveryQuery",
    "Notice",
    "NoticeType",
    "Phase",
    "Publication",
    "Reason",
    "RecoveryQuery",
    "Subscription",
    "UnknownEnvelope",
    "channel_problem",
    "check_channel",
    "decide",
    "encode_notice",
    "encode_publication",
    "hub_limit_help",
    "hub_limit_ranges",
    "is_epoch",
    "is_offset",
    "join_channel",
    "make_epoch",
    "parse_envelope",
    "parse_recovery_query",
]
