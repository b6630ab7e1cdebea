"""Brokers: channels that reach members in other worker processes and on other hosts (DESIGN §6).

:mod:`~wsdaemon.broker.interface` is the seam (:class:`IBroker`);
:mod:`~wsdaemon.broker.local` the in-process broker (the default);
:mod:`~wsdaemon.broker.linked` what every cross-process broker shares;
:mod:`~wsdaemon.broker.redis` the Redis link (the only module that imports
``txredisapi``); :mod:`~wsdaemon.broker.payload` the bytes of one message
between processes.
"""

from wsdaemon.broker.interface import (
    HistoryReceiver,
    HistoryUnavailable,
    IBroker,
    LinkState,
    Presence,
    PresenceUnavailable,
    Published,
    PublishRefused,
    Receiver,
    Route,
)
from wsdaemon.broker.local import InProcessBroker

__all__ = [
    "HistoryReceiver",
    "HistoryUnavailable",
    "IBroker",
    "InProcessBroker",
    "LinkState",
    "Presence",
    "PresenceUnavailable",
    "PublishRefused",
    "Published",
    "Receiver",
    "Route",
]
