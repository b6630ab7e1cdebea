"""The Redis link: channels as Redis PUBLISH/SUBSCRIBE, presence as expiring hash fields.

Rules for this file:

* This is the only module that imports ``txredisapi`` (DESIGN §6). Its protocol
  classes speak RESP; the connecting, the timeouts and the reconnect loop are
  ours, on the injected reactor, so they are tested with ``MemoryReactorClock``.
* Two connections: one for commands (PUBLISH, presence) and one subscribed. The
  link is up when both are connected, authenticated and on their database; the
  loss of either takes it down and closes the other; the next attempt waits a
  backoff delay with jitter.
* A channel ``/chat/room1`` is the Redis channel ``PREFIX/chat/room1``; its
  presence is the hash ``PREFIXpresence:/chat/room1``, one field per process
  (``"COUNT EXPIRES"``), rewritten on each change and every
  ``presence_refresh_seconds``: the entry of a process that died without a word
  is ignored once it expires (three refreshes), and the key itself expires.
* History: a positioned publish and a history read are each one Lua script
  (:mod:`wsdaemon.broker.redis_history`; ``EVALSHA``, ``EVAL`` on ``NOSCRIPT``).
  While the link is down they fail at once (``HistoryUnavailable``), unqueued.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from typing import Any

import txredisapi  # type: ignore[import-untyped]  # no type information
from twisted.internet import defer
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import HostnameEndpoint, UNIXClientEndpoint, wrapClientTLS
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.internet.protocol import Factory
from twisted.internet.ssl import Certificate, optionsForClientTLS
from twisted.internet.task import LoopingCall
from twisted.python.failure import Failure

from wsdaemon.broker import redis_history
from wsdaemon.broker.backoff import Backoff
from wsdaemon.broker.interface import HistoryUnavailable
from wsdaemon.broker.linked import LinkedBroker, presence_unavailable
from wsdaemon.broker.payload import ORIGIN_BYTES
from wsdaemon.config.model import BrokerConfig
from wsdaemon.hub import ChannelState, Fetch, HubLimits, Publication

#: A presence entry expires after this many refresh intervals without a refresh.
PRESENCE_TTL_REFRESHES = 3


class _Commands(txredisapi.RedisProtocol):  # type: ignore[misc]  # untyped base
    """The command connection (txredisapi's protocol; the reactor is ours)."""


class _Subscriber(txredisapi.SubscriberProtocol):  # type: ignore[misc]  # untyped base
    """The subscribed connection: each message goes to the link."""

    link: RedisLink

    def messageReceived(self, pattern: Any, channel: bytes, message: bytes) -> None:
        """A published payload: to the broker, named without our prefix."""
        self.link.received(channel, message)


class _ConnectionFactory(Factory):
    """Builds one txredisapi protocol on our reactor, and takes the callbacks it makes on its factory."""

    isLazy = False

    def __init__(self, kind: type[Any], link: RedisLink, password: str | None) -> None:
        self.kind = kind
        self.link = link
        self.password = password
        self.error: str | None = None

    def buildProtocol(self, addr: Any) -> Any:
        """A protocol that returns bytes as they are (no charset, no number conversion)."""
        settings = self.link.settings
        connection = self.kind(
            charset=None,
            password=self.password,
            dbid=settings.db or None,
            convertNumbers=False,
            replyTimeout=settings.connect_timeout_seconds,
            username=settings.username,
        )
        connection.factory = self
        connection.callLater = self.link.reactor.callLater
        connection.link = self.link
        return connection

    def stopTrying(self) -> None:
        """txredisapi's protocol calls this when AUTH or SELECT fails; our loop decides what follows."""

    def connectionError(self, message: str) -> None:
        """AUTH or SELECT failed: remember why, for the log."""
        self.error = message


class RedisLink:
    """The link of a :class:`LinkedBroker` to one Redis server.

    Args:
        reactor: connects and keeps time.
        settings: the ``[broker]`` table.
        password: read from ``password_file`` (never from the command line).
        process_name: this process's field in presence hashes.
        uniform: random numbers for the backoff's jitter.
    """

    def __init__(
        self,
        reactor: Any,
        settings: BrokerConfig,
        password: str | None,
        process_name: str,
        uniform: Callable[[], float] = random.random,
    ) -> None:
        self.reactor = reactor
        self.settings = settings
        self.password = password
        self.process_name = process_name
        self.description = settings.url
        self.backoff = Backoff(settings.reconnect_initial_seconds, settings.reconnect_max_seconds, uniform)
        self.broker: LinkedBroker | None = None
        self.commands: Any = None
        self.subscriber: Any = None
        self.counts: dict[str, int] = {}
        self._dirty: set[str] = set()
        self._flush_call: Any = None
        self._retry_call: Any = None
        self._attempt: Deferred[None] | None = None
        self._refresh = LoopingCall(self._refresh_presence)
        self._refresh.clock = reactor
        self.stopped = False

    # --- connecting -------------------------------------------------------------------

    def endpoint(self) -> IStreamClientEndpoint:
        """Where Redis is: TCP, TLS over TCP, or a unix socket."""
        settings, timeout = self.settings, self.settings.connect_timeout_seconds
        if settings.scheme == "unix":
            return UNIXClientEndpoint(self.reactor, settings.path, timeout=timeout)
        tcp = HostnameEndpoint(self.reactor, settings.host, settings.port, timeout=timeout)
        if settings.scheme != "rediss":
            return tcp
        trust = None
        if settings.tls_ca_file is not None:
            with open(settings.tls_ca_file, "rb") as pem:
                trust = Certificate.loadPEM(pem.read())
        return wrapClientTLS(optionsForClientTLS(settings.host, trustRoot=trust), tcp)

    def start(self, broker: LinkedBroker) -> None:
        """Connect now, and again after every loss, until :meth:`stop`."""
        self.broker = broker
        self._connect()

    def _connect(self) -> None:
        self._retry_call = None
        if self.stopped:
            return
        self._attempt = defer.ensureDeferred(self._open()).addErrback(self._failed)

    async def _open(self) -> None:
        """Both connections ready, then up; a loss of either later takes the link down."""
        commands = await self._connection(_Commands)
        try:
            subscriber = await self._connection(_Subscriber)
        except BaseException:
            commands.transport.abortConnection()
            raise
        if self.stopped:
            commands.transport.abortConnection()
            subscriber.transport.abortConnection()
            return
        self.commands, self.subscriber = commands, subscriber
        for connection in (commands, subscriber):
            connection.whenDisconnected().addCallback(self._lost)
        self.backoff.reset()
        assert self.broker is not None
        self.broker.link_up()
        self._dirty.update(self.counts)
        self._refresh.start(self.settings.presence_refresh_seconds, now=True)

    async def _connection(self, kind: type[Any]) -> Any:
        """One connection, authenticated and on its database, within ``connect_timeout_seconds``."""
        factory = _ConnectionFactory(kind, self, self.password)
        connection: Any = await self.endpoint().connect(factory)
        ready: Deferred[Any] = Deferred()

        def closed(_: object) -> None:
            if not ready.called:
                ready.errback(ConnectionError(factory.error or "closed while connecting"))

        connection.whenConnected().chainDeferred(ready)
        connection.whenDisconnected().addCallback(closed)
        ready.addTimeout(self.settings.connect_timeout_seconds, self.reactor)
        try:
            return await ready
        except BaseException:
            connection.transport.abortConnection()
            raise

    def _failed(self, failure: Failure) -> None:
        self._attempt = None
        if self.stopped:
            return
        assert self.broker is not None
        self.broker.link_failed(_reason(failure))
        self._schedule_retry()

    def _lost(self, connection: Any) -> None:
        """One connection closed: close the other, tell the broker once, try again after a delay."""
        if connection is not self.commands and connection is not self.subscriber:
            return  # the other half of a pair already handled
        commands, subscriber = self.commands, self.subscriber
        self.commands = self.subscriber = None
        for other in (commands, subscriber):
            if other is not connection and other is not None:
                other.transport.abortConnection()
        if self._refresh.running:
            self._refresh.stop()
        if self.broker is not None and self.stopped:
            self.broker.link_closed()
        elif self.broker is not None:
            self.broker.link_down("the connection closed")
            self._schedule_retry()

    def _schedule_retry(self) -> None:
        if self._retry_call is None:
            self._retry_call = self.reactor.callLater(self.backoff.next_delay(), self._connect)

    def stop(self) -> Deferred[None]:
        """Remove this process's presence entries, then close both connections for good."""
        self.stopped = True
        if self._retry_call is not None and self._retry_call.active():
            self._retry_call.cancel()
        if self._refresh.running:
            self._refresh.stop()
        commands, subscriber = self.commands, self.subscriber
        if commands is None or subscriber is None:
            return defer.succeed(None)
        goodbyes = [commands.hdel(self._presence_key(channel), self.process_name) for channel in self.counts]
        done = defer.DeferredList(goodbyes, consumeErrors=True)
        done.addTimeout(self.settings.connect_timeout_seconds, self.reactor)

        def close(_: object) -> None:
            for connection in (commands, subscriber):
                connection.transport.loseConnection()

        return done.addBoth(close)

    # --- what the broker asks -----------------------------------------------------------

    def _name(self, channel: str) -> bytes:
        return (self.settings.prefix + channel).encode("utf-8")

    def publish(self, channel: str, data: bytes) -> None:
        """PUBLISH; a reply lost with the connection changes nothing (the loss is handled once)."""
        if self.commands is not None:
            self.commands.publish(self._name(channel), data).addErrback(_ignore)

    def publish_positioned(
        self, channel: str, header: bytes, data: bytes, limits: HubLimits, epoch: str
    ) -> Deferred[tuple[str, int]]:
        """The positioning script: offset, stream, TTL and PUBLISH in one step; fires with (epoch, offset)."""
        keys = redis_history.history_keys(self.settings.prefix, channel)
        args = redis_history.publish_args(self._name(channel), header, data, limits, epoch)
        return self._script(redis_history.PUBLISH_SCRIPT, keys, args).addCallback(redis_history.position_answer)

    def history(
        self, channel: str, fetch: Fetch, limits: HubLimits, epoch: str
    ) -> Deferred[tuple[ChannelState, list[Publication]]]:
        """The reading script: the state and the entries ``fetch`` wants, in one step."""
        keys = redis_history.history_keys(self.settings.prefix, channel)
        answer = self._script(redis_history.HISTORY_SCRIPT, keys, redis_history.history_args(limits, fetch, epoch))
        return answer.addCallback(redis_history.history_answer, channel, fetch)

    def _script(self, script: str, keys: list[bytes], args: list[bytes]) -> Deferred[Any]:
        """Run a script on the command connection (txredisapi sends EVALSHA once it has sent EVAL)."""
        if self.commands is None:
            return defer.fail(HistoryUnavailable("the broker is down"))
        return defer.maybeDeferred(self.commands.eval, script, keys, args)

    def subscribe(self, channel: str) -> None:
        """SUBSCRIBE; the broker hears when Redis confirmed it."""

        def confirmed(_: object) -> None:
            if self.broker is not None:
                self.broker.link_subscribed(channel)

        if self.subscriber is not None:
            self.subscriber.subscribe([self._name(channel)]).addCallbacks(confirmed, _ignore)

    def unsubscribe(self, channel: str) -> None:
        """UNSUBSCRIBE."""
        if self.subscriber is not None:
            self.subscriber.unsubscribe([self._name(channel)]).addErrback(_ignore)

    def received(self, name: bytes, data: bytes) -> None:
        """A message on a subscribed Redis channel."""
        prefix = self.settings.prefix.encode("utf-8")
        if self.broker is not None and name.startswith(prefix):
            try:
                channel = name[len(prefix) :].decode("utf-8")
            except UnicodeDecodeError:
                return
            self.broker.link_message(channel, data)

    # --- presence ----------------------------------------------------------------------

    def _presence_key(self, channel: str) -> bytes:
        return (self.settings.prefix + "presence:" + channel).encode("utf-8")

    def members_changed(self, channel: str, count: int) -> None:
        """Announce the new count soon (changes of one reactor turn are written together)."""
        if count:
            self.counts[channel] = count
        else:
            self.counts.pop(channel, None)
        self._dirty.add(channel)
        if self._flush_call is None and self.commands is not None:
            self._flush_call = self.reactor.callLater(0, self._flush_presence)

    def _refresh_presence(self) -> None:
        """Every ``presence_refresh_seconds``: rewrite every entry, and PING so a dead server is noticed."""
        self._dirty.update(self.counts)
        self._flush_presence()
        if self.commands is not None:
            self.commands.ping().addErrback(_ignore)

    def _flush_presence(self) -> None:
        """Write each changed count with its expiry; a count of 0 removes this process's entry."""
        self._flush_call = None
        commands = self.commands
        if commands is None:
            return
        ttl = self.settings.presence_refresh_seconds * PRESENCE_TTL_REFRESHES
        expires = f"{self.reactor.seconds() + ttl:.3f}"
        dirty, self._dirty = self._dirty, set()
        for channel in dirty:
            key, count = self._presence_key(channel), self.counts.get(channel, 0)
            if count:
                commands.hset(key, self.process_name, f"{count} {expires}").addErrback(_ignore)
                commands.expire(key, int(ttl) + 1).addErrback(_ignore)
            else:
                commands.hdel(key, self.process_name).addErrback(_ignore)

    def presence(self, channel: str) -> Deferred[int]:
        """Members of every process whose entry has not expired (ours counted from memory)."""
        if self.commands is None:
            return presence_unavailable("the broker is down")
        now = self.reactor.seconds()

        def total(entries: dict[bytes, bytes]) -> int:
            others = sum(
                _live_count(value, now) for field, value in entries.items() if field != self.process_name.encode()
            )
            return others + self.counts.get(channel, 0)

        result: Deferred[int] = self.commands.hgetall(self._presence_key(channel)).addCallback(total)
        return result


def _live_count(value: bytes, now: float) -> int:
    """The count of one presence entry, or 0 once it expired (or if it is not ours to read)."""
    try:
        count, expires = value.split()
        return int(count) if float(expires) > now else 0
    except ValueError:
        return 0


def _reason(failure: Failure) -> str:
    """Why a connection attempt failed, in one line for the log."""
    if failure.check(defer.TimeoutError):
        return "timed out"
    return failure.getErrorMessage() or type(failure.value).__name__


def _ignore(failure: Failure) -> None:
    """A command lost with its connection: the loss itself is logged once, by the broker."""


def read_password(settings: BrokerConfig) -> str | None:
    """The password from ``password_file`` (its first line), or None without one.

    Raises:
        OSError: the file cannot be read.
    """
    if settings.password_file is None:
        return None
    with open(settings.password_file, encoding="utf-8") as stream:
        return stream.readline().rstrip("\r\n")


def redis_broker(reactor: Any, settings: BrokerConfig, password: str | None) -> LinkedBroker:
    """A broker whose channels span every process connected to the same Redis (and prefix)."""
    origin = os.urandom(ORIGIN_BYTES)
    return LinkedBroker(RedisLink(reactor, settings, password, origin.hex()), settings.max_pending_messages, origin)
