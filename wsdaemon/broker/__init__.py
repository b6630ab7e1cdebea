"""Brokers: channels that reach members in other worker processes and on other hosts (DESIGN §6).

:mod:`~wsdaemon.broker.interface` is the seam (:class:`IBroker`);
:mod:`~wsdaemon.broker.local` the in-process broker (the default, with its
history stores); :mod:`~wsdaemon.broker.linked` what every cross-process broker
shares, over a :mod:`~wsdaemon.broker.link`, with its
:mod:`~wsdaemon.broker.answers` bounded; :mod:`~wsdaemon.broker.redis` the
Redis link (the only module that imports ``txredisapi``) and
:mod:`~wsdaemon.broker.redis_history` its history keys and scripts;
:mod:`~wsdaemon.broker.relay` the workers' relay (bodies in
:mod:`~wsdaemon.broker.relay_wire`); :mod:`~wsdaemon.broker.payload` the bytes
of one message between processes.
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
