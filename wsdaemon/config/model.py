"""The validated configuration as frozen dataclasses, and the constants other modules share."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from wsdaemon.allocator import DEFAULT_CACHE_BYTES, DEFAULT_RELEASE_AFTER_CLOSED
from wsdaemon.core.deflate import DeflateSettings
from wsdaemon.core.limits import Limits
from wsdaemon.ratelimit import MessageRate

DEFAULT_LISTEN = "tcp:8080:interface=127.0.0.1"

#: ``[process] workers = "auto"``: one worker per CPU this process may run on.
AUTO_WORKERS = "auto"
#: The most worker processes one daemon runs (a finite bound, as for every limit).
MAX_WORKERS = 1024

#: The most ``[proxy] trusted_networks`` entries (a finite bound, as for every list a request is checked against).
MAX_TRUSTED_NETWORKS = 1024

#: The largest ``message_rate`` (messages per second) and ``message_burst`` an endpoint may set.
MAX_MESSAGE_RATE = 1_000_000

#: Paths the site serves itself, which no endpoint may take.
HEALTH_PATH = "/healthz"
DEMO_PATH = "/"
DEMO_STATIC_PATH = "/static"

#: Limits that bound a whole listener (its accept loop or its HTTP side), so a
#: per-endpoint override could never take effect: they belong in ``[limits]``.
LISTENER_LIMITS = frozenset(
    {
        "handshake_timeout_seconds",
        "max_connections",
        "max_connections_per_ip",
        "connection_rate_per_ip",
        "connection_burst_per_ip",
        "rate_limit_max_clients",
        "http_max_headers",
        "http_max_header_bytes",
        "http_max_body_bytes",
        "drain_timeout_seconds",
    }
)


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a configuration, in words a person can act on."""

    key: str
    expected: str
    got: str


class ConfigError(Exception):
    """Every problem in one configuration source; ``str()`` is the whole report, printable as is."""

    def __init__(self, source: str, problems: list[Problem]) -> None:
        super().__init__(source, problems)
        self.source = source
        self.problems = problems

    def __str__(self) -> str:
        lines = [f"invalid configuration in {self.source}:"]
        lines.extend(f"  {p.key}: expected {p.expected}, got {p.got}" for p in self.problems)
        return "\n".join(lines)


@dataclass(frozen=True)
class SNIConfig:
    """One more certificate on a TLS listener, served to clients asking for ``server_name``."""

    server_name: str  # lower case; "*.example.com" covers exactly one more label
    certificate: str
    private_key: str


@dataclass(frozen=True)
class TLSConfig:
    """A TLS listener's certificates and policy; files are read by :mod:`wsdaemon.tls`."""

    certificate: str
    private_key: str
    sni: tuple[SNIConfig, ...] = ()
    client_ca: str | None = None
    client_certs: str = "none"  # "none", "optional" or "required"
    min_tls_version: str = "1.2"
    ciphers: str | None = None  # None: wsdaemon.tls.MODERN_CIPHERS
    expiry_warning_days: int = 14


@dataclass(frozen=True)
class ListenerConfig:
    """One listening socket, as a Twisted server endpoint string, with TLS on top if ``tls`` is set."""

    endpoint: str
    tls: TLSConfig | None = None


@dataclass(frozen=True)
class AuthConfig:
    """An endpoint's ``[endpoints.auth]``: who may upgrade, checked before the 101.

    ``options`` is a read-only view of the authenticator's own keys (all but the three
    below), which its plugin validates, as a handler plugin validates ``[endpoints.options]``.
    """

    type: str = "none"
    options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}), hash=False)
    close_on_expiry: bool = False  # close with 1008 once the identity's expires_at has passed
    timeout_seconds: float | None = (
        None  # an asynchronous check not answered by then: 503; None: handshake_timeout_seconds
    )


@dataclass(frozen=True)
class EndpointConfig:
    """One WebSocket URL path, the handler behind it and its policy.

    ``options`` is a read-only view of the handler's free-form table, which the
    handler plugin validates. ``limits`` has this endpoint's overrides applied.
    """

    path: str
    handler: str
    options: Mapping[str, Any] = field(hash=False)
    subprotocols: tuple[str, ...]
    allowed_origins: tuple[str, ...]
    limits: Limits
    deflate: DeflateSettings = field(default_factory=DeflateSettings)
    auth: AuthConfig = field(default_factory=AuthConfig)
    message_rate: MessageRate | None = None  # message_rate/message_burst; None: no message rate limit


@dataclass(frozen=True)
class StaticMount:
    """A directory served as plain files at a URL path (``[[static]]``); nothing outside it is served."""

    path: str
    directory: str


@dataclass(frozen=True)
class ProcessConfig:
    """``[process]``: the worker processes that serve the listeners, and their supervision.

    ``workers`` is a count, or ``"auto"`` (one per CPU this process may run on); with 1
    the daemon is one process, as without the table. The three times bound the
    supervision of several workers (see :mod:`wsdaemon.workers`).
    """

    workers: int | str = 1
    #: A worker not ready (listening) this long after its start is killed (SIGKILL) and replaced.
    start_timeout_seconds: float = 30.0
    #: A ready worker whose reactor sent no heartbeat for this long is killed (SIGKILL) and replaced.
    heartbeat_timeout_seconds: float = 10.0
    #: The longest wait before restarting a worker that keeps dying soon after it started.
    restart_delay_max_seconds: float = 30.0
    #: On shutdown, how long after ``drain_timeout_seconds`` a worker may take to exit before it is killed.
    stop_grace_seconds: float = 5.0


@dataclass(frozen=True)
class BrokerConfig:
    """``[broker]``: the Redis server that carries channels between processes and hosts.

    ``url`` is kept as written, without secrets (it may not hold a password), for logs;
    the parts are what the connection uses.
    """

    url: str
    scheme: str  # "redis", "rediss" (TLS) or "unix"
    host: str = "127.0.0.1"
    port: int = 6379
    db: int = 0
    path: str = ""  # the socket, for "unix"
    username: str | None = None
    password_file: str | None = None
    tls_ca_file: str | None = None  # rediss: CAs to trust instead of the system's
    prefix: str = "wsdaemon:"
    required: bool = False
    #: Messages kept for the other processes while Redis is down (and in flight per channel).
    max_pending_messages: int = 10000
    #: Time to connect, authenticate and select the database, and to answer a command.
    connect_timeout_seconds: float = 5.0
    #: The first reconnect delay; it doubles after each failure, with jitter, up to the next one.
    reconnect_initial_seconds: float = 0.5
    reconnect_max_seconds: float = 30.0
    #: How often this process re-announces its members (presence); entries expire after three times this.
    presence_refresh_seconds: float = 10.0


@dataclass(frozen=True)
class ApiConfig:
    """``[api]``: the HTTP API for backends (publish, presence), off unless the table is present."""

    token_file: str
    publish_path: str = "/api/publish"
    presence_path: str = "/api/presence"
    #: Listener endpoint strings that serve the API; empty: every listener.
    listeners: tuple[str, ...] = ()


#: Where ``/metrics`` is served (on the main listeners, or alone on ``[metrics] listen``).
METRICS_PATH = "/metrics"


@dataclass(frozen=True)
class MetricsConfig:
    """``[metrics]``: ``/metrics`` in the Prometheus text format, off unless ``enabled``."""

    enabled: bool = False
    #: Client networks that may scrape (CIDR text, e.g. "10.0.0.0/8"); anyone else gets 403.
    allowed_networks: tuple[str, ...] = ("127.0.0.0/8", "::1/128")
    #: A Twisted endpoint string of its own for ``/metrics``; None: served on every listener.
    listen: str | None = None


@dataclass(frozen=True)
class ProxyConfig:
    """``[proxy]``: the reverse proxies in front of the daemon (none by default).

    Only a request whose TCP peer is in ``trusted_networks`` may say, with
    ``Forwarded`` or ``X-Forwarded-For``, who its client is, and with
    ``X-Forwarded-Proto``/``proto=`` that the client spoke https.
    """

    trusted_networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()


@dataclass(frozen=True)
class Config:
    """The whole validated configuration; ``source`` is None for the built-in defaults."""

    source: str | None
    listeners: tuple[ListenerConfig, ...]
    limits: Limits
    endpoints: tuple[EndpointConfig, ...]
    demo_page: bool
    static: tuple[StaticMount, ...] = ()
    allocator_cache_bytes: int = DEFAULT_CACHE_BYTES  # [memory]: see wsdaemon.allocator
    process: ProcessConfig = field(default_factory=ProcessConfig)
    release_after_closed_connections: int = DEFAULT_RELEASE_AFTER_CLOSED  # [memory]: see wsdaemon.memory_release
    broker: BrokerConfig | None = None  # [broker]: None is the in-process broker
    api: ApiConfig | None = None  # [api]: None is no API
    proxy: ProxyConfig = field(default_factory=ProxyConfig)  # [proxy]: trusted reverse proxies
    metrics: MetricsConfig = field(default_factory=MetricsConfig)  # [metrics]
