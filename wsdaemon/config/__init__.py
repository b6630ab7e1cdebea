"""The daemon's configuration: one TOML file parsed into frozen dataclasses.

Rules for this package:

* Everything is validated up front; every problem (key, expected, got) is collected and raised
  as one :class:`ConfigError`, so nothing is half-applied.
* A file overrides only what it names; a list (``[[listeners]]``, ``[[endpoints]]``) that is
  present replaces the default list whole.
* ``[limits]`` keys and ranges are those of :class:`~wsdaemon.core.limits.Limits`.
* No Twisted here: listener endpoint strings are only checked for being non-empty strings;
  Twisted parses them when the service is built.

Modules: :mod:`~wsdaemon.config.model` (the dataclasses), :mod:`~wsdaemon.config.loader` (file,
document, ``--listen``), one per part of the file (:mod:`~wsdaemon.config.listeners`,
:mod:`~wsdaemon.config.limits`, :mod:`~wsdaemon.config.endpoints` with :mod:`~wsdaemon.config.auth`,
:mod:`~wsdaemon.config.static`, :mod:`~wsdaemon.config.process`, :mod:`~wsdaemon.config.metrics`),
and :mod:`~wsdaemon.config.checks` (the generic value checks they share).
"""

from wsdaemon.config.loader import default_config, load_config, parse_config
from wsdaemon.config.model import (
    AUTO_WORKERS,
    DEFAULT_LISTEN,
    DEMO_PATH,
    DEMO_STATIC_PATH,
    HEALTH_PATH,
    LISTENER_LIMITS,
    METRICS_PATH,
    AuthConfig,
    Config,
    ConfigError,
    EndpointConfig,
    ListenerConfig,
    MetricsConfig,
    Problem,
    ProcessConfig,
    SNIConfig,
    StaticMount,
    TLSConfig,
)
from wsdaemon.config.process import worker_count

__all__ = [
    "AUTO_WORKERS",
    "DEFAULT_LISTEN",
    "DEMO_PATH",
    "DEMO_STATIC_PATH",
    "HEALTH_PATH",
    "LISTENER_LIMITS",
    "METRICS_PATH",
    "AuthConfig",
    "Config",
    "ConfigError",
    "EndpointConfig",
    "ListenerConfig",
    "MetricsConfig",
    "Problem",
    "ProcessConfig",
    "SNIConfig",
    "StaticMount",
    "TLSConfig",
    "default_config",
    "load_config",
    "parse_config",
    "worker_count",
]
