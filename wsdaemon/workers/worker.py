"""A worker process: the single-process service, on sockets inherited from the main process.

``twist wsdaemon … --worker N`` is what the supervisor runs: the main process's own command
line plus ``--worker N``. The worker reads its hello on the channel, adopts the inherited
sockets (``IReactorSocket.adoptStreamPort``, through Twisted's
:class:`~twisted.internet.endpoints.AdoptedStreamServerEndpoint`) and builds exactly the
service a single process builds (:func:`wsdaemon.service.build_service`): the same site,
TLS wrapped over the adopted socket, the same SIGTERM drain and SIGHUP reload. Only its
sd_notify words go to the supervisor over the channel instead of to systemd, and a
heartbeat timer tells the supervisor that its reactor is alive.

If the main process goes away (its end of the channel closes), the worker drains and exits
as on SIGTERM: no worker outlives its supervisor.
"""

from __future__ import annotations

import dataclasses
import socket
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from twisted.application.service import IService, MultiService, Service
from twisted.internet.endpoints import AdoptedStreamServerEndpoint
from twisted.internet.error import ReactorNotRunning
from twisted.internet.interfaces import IStreamServerEndpoint
from twisted.internet.protocol import Protocol
from twisted.internet.stdio import StandardIO
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from wsdaemon.broker.relay import RelayLink, relay_broker
from wsdaemon.config import Config, ListenerConfig
from wsdaemon.config.model import BrokerConfig
from wsdaemon.heap import leave_alone
from wsdaemon.service import build_service
from wsdaemon.systemd import Notifier
from wsdaemon.workers.channel import (
    FROM_SUPERVISOR_FD,
    TO_SUPERVISOR_FD,
    ChannelError,
    Hello,
    MessageDecoder,
    MessageKind,
    encode,
    read_message,
    socket_fd,
)
from wsdaemon.workers.metrics import MetricsLink


class SupervisorLink(Protocol):
    """The worker's end of the channel (its fds 0 and 3, through ``StandardIO``)."""

    log = Logger()

    def __init__(self, reactor: Any) -> None:
        self.reactor = reactor
        self.decoder = MessageDecoder()
        self.relay: RelayLink | None = None
        self.metrics: MetricsLink | None = None
        self.shutting_down = False
        reactor.addSystemEventTrigger("before", "shutdown", self._shutting_down)

    def _shutting_down(self) -> None:
        self.shutting_down = True

    def send_notify(self, data: bytes, address: str) -> None:
        """Send sd_notify text to the supervisor (a :class:`~wsdaemon.systemd.Notifier` sender)."""
        if self.transport is not None:
            self.transport.write(encode(MessageKind.NOTIFY, data))

    def heartbeat(self) -> None:
        """Tell the supervisor the reactor is alive."""
        self.send_notify(b"WATCHDOG=1", "supervisor")

    def send(self, message: bytes) -> None:
        """Write one encoded message to the supervisor (the broadcast relay's way up)."""
        if self.transport is not None:
            self.transport.write(message)

    def dataReceived(self, data: bytes) -> None:
        """Messages from the supervisor after the hello: the broadcast relay's and the metrics'."""
        try:
            for kind, body in self.decoder.feed(data):
                if self.metrics is not None and self.metrics.received(kind, body):
                    continue
                if self.relay is None or not self.relay.received(kind, body):
                    raise ChannelError(f"unexpected {kind.name} message")
        except ChannelError as error:
            self.log.error("the main process sent a bad message ({error}); shutting down", error=error)
            self._stop()

    def connectionLost(self, reason: Failure | None = None) -> None:
        """The main process is gone: drain and exit as on SIGTERM."""
        if not self.shutting_down:
            self.log.info("the main process closed the channel; shutting down")
            self._stop()

    def _stop(self) -> None:
        try:
            self.reactor.stop()
        except ReactorNotRunning:
            pass  # already shutting down


class Heartbeat(Service):
    """Sends the heartbeat from a reactor timer: a hung reactor stops sending it.

    It keeps going while the worker drains (until the process exits), so a drain longer
    than ``heartbeat_timeout_seconds`` does not look like a hang.
    """

    def __init__(self, reactor: Any, beat: Callable[[], None], interval_seconds: float) -> None:
        self.timer = LoopingCall(beat)
        self.timer.clock = reactor
        self.interval_seconds = interval_seconds

    def startService(self) -> None:
        """Start beating."""
        super().startService()  # type: ignore[no-untyped-call]  # super(): mypy#16653
        self.timer.start(self.interval_seconds, now=True)


def merge_listeners(started: Sequence[ListenerConfig], fresh: Sequence[ListenerConfig]) -> tuple[ListenerConfig, ...]:
    """The main process's listeners, with TLS settings from the file as it is now where they still fit.

    The sockets are the ones the main process opened (listener changes need a restart),
    but a worker started later reads certificates as a reload would: from the file's
    settings for the same endpoint, if it is still TLS there (or still plain).
    """
    now = {listener.endpoint: listener for listener in fresh}
    merged = []
    for listener in started:
        current = now.get(listener.endpoint)
        same_kind = current is not None and (current.tls is None) == (listener.tls is None)
        merged.append(current if current is not None and same_kind else listener)
    return tuple(merged)


def adopted_endpoints(reactor: Any, listeners: Sequence[ListenerConfig]) -> list[tuple[str, IStreamServerEndpoint]]:
    """An endpoint per inherited socket (fd 4, 5, …), named by its listener's endpoint string."""
    endpoints: list[tuple[str, IStreamServerEndpoint]] = []
    for index, listener in enumerate(listeners):
        fd = socket_fd(index)
        with socket.socket(fileno=fd) as probe:  # the kernel says which family the socket is
            family = probe.family
            probe.detach()
        endpoints.append((listener.endpoint, AdoptedStreamServerEndpoint(reactor, fd, family)))
    return endpoints


def build_worker(
    config: Config,
    handlers: Mapping[str, Any],
    reactor: Any,
    worker: int,
    *,
    load_config: Callable[[], Config] | None = None,
    settle_heap: Callable[[], None] = leave_alone,
) -> IService:
    """The worker's service: its hello read, its sockets adopted, the single-process service on them.

    ``load_config`` and ``settle_heap`` are :func:`~wsdaemon.service.build_service`'s.

    Raises:
        ChannelError: no hello from the supervisor (not started by one).
        ConfigError: as :func:`~wsdaemon.service.build_service`.
    """
    kind, body = read_message(FROM_SUPERVISOR_FD)
    if kind is not MessageKind.HELLO:
        raise ChannelError(f"expected the supervisor's hello, got {kind.name}")
    hello = Hello.decode(body)
    if hello.worker != worker:
        raise ChannelError(f"hello for worker {hello.worker} sent to worker {worker}")
    link = SupervisorLink(reactor)
    # mypy reads the Windows StandardIO's signature; the POSIX one takes stdin= and stdout=.
    StandardIO(link, stdin=FROM_SUPERVISOR_FD, stdout=TO_SUPERVISOR_FD, reactor=reactor)  # type: ignore[call-arg]
    listeners = merge_listeners(hello.listeners, config.listeners)
    served = dataclasses.replace(config, listeners=listeners)
    broker = None
    if config.broker is None:  # channels cross the workers through the main process
        broker = relay_broker(link.send, BrokerConfig.max_pending_messages)
        link.relay = broker.link  # type: ignore[assignment]  # a RelayLink, made just above
    share_metrics = None
    beat = link.heartbeat
    if config.metrics.enabled:  # figures go to the main process with each heartbeat
        link.metrics = metrics = MetricsLink(link.send, worker, reactor)
        share_metrics = metrics.share

        def beat() -> None:
            link.heartbeat()
            metrics.report()

    root = MultiService()
    build_service(
        served,
        handlers,
        reactor,
        load_config=load_config,
        notifier=Notifier("supervisor", send=link.send_notify),
        endpoints=adopted_endpoints(reactor, listeners),
        broker=broker,
        share_metrics=share_metrics,
        settle_heap=settle_heap,
    ).setServiceParent(root)
    Heartbeat(reactor, beat, hello.heartbeat_interval_seconds).setServiceParent(root)  # type: ignore[no-untyped-call]
    return root
