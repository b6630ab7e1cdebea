"""What a reload (SIGHUP) re-reads and applies: the certificates, then a new Runtime.

Rules for this file:

* A reload applies what is safe and logs the rest. Certificates are swapped per
  listener: a broken one is refused and the old one stays. The config's endpoints and
  limits become a new :class:`Runtime`, swapped in whole; any refused handler or option
  keeps the running Runtime as it is. Listener changes need a restart: they are logged.
* Nothing is half-applied: the new Runtime is built completely before it is swapped in.
* The signal, readiness and sd_notify side of a reload is the lifecycle's
  (:mod:`wsdaemon.lifecycle`); this module only does the work and says whether all of
  it applied.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Mapping

from twisted.logger import Logger

from wsdaemon.config import Config, ConfigError, ListenerConfig, Problem
from wsdaemon.runtime import RuntimeBuilder, RuntimeSlot, apply_process_settings
from wsdaemon.tls import ServerTLS, TLSConfigError


def utc_now() -> datetime.datetime:
    """The current time (certificate expiry is in UTC)."""
    return datetime.datetime.now(datetime.UTC)


def listener_shape(listeners: tuple[ListenerConfig, ...]) -> list[tuple[str, bool]]:
    """What only a restart can change: the endpoints and whether each speaks TLS."""
    return [(listener.endpoint, listener.tls is not None) for listener in listeners]


class Reloader:
    """Re-reads the config and the certificates, and swaps in the Runtime built from them.

    Args:
        runtime: the slot holding the running Runtime; a successful reload swaps it.
        builder: builds the new Runtime (the same builder that built the first one).
        tls: each TLS listener's certificates, by listener endpoint string.
        load_config: re-reads the config (the file and ``--listen``); None when there is no
            file to re-read (built-in defaults): the running config is rebuilt as it is.
        now: the clock certificate expiry is judged by.
    """

    log = Logger()

    def __init__(
        self,
        runtime: RuntimeSlot,
        builder: RuntimeBuilder,
        tls: Mapping[str, ServerTLS],
        *,
        load_config: Callable[[], Config] | None = None,
        now: Callable[[], datetime.datetime] = utc_now,
    ) -> None:
        self.runtime = runtime
        self.builder = builder
        self.tls = dict(tls)
        self.load_config = load_config
        self.now = now

    def reload(self) -> bool:
        """Re-read and apply everything; True if all of it applied (else the failed parts kept the old)."""
        config = self._load()
        certificates_ok = self._reload_certificates(config)
        config_ok = config is not None and self._apply(config)
        self.warn_expiring()
        return certificates_ok and config_ok

    def warn_expiring(self) -> None:
        """Log a warning for each served certificate close to its expiry (at start and after each reload)."""
        now = self.now()
        for endpoint, tls in self.tls.items():
            for line in tls.expiry_warnings(now):
                self.log.warn("{endpoint}: {warning}", endpoint=endpoint, warning=line)

    def _load(self) -> Config | None:
        if self.load_config is None:
            return self.runtime.current.config
        try:
            return self.load_config()
        except ConfigError as error:
            self.log.error("reload: configuration refused, keeping the running one: {error}", error=str(error))
            return None

    def _reload_certificates(self, config: Config | None) -> bool:
        """Re-read each TLS listener's files; a listener whose new files fail keeps its old ones.

        The files named in ``config`` are used where the listener is still TLS there;
        otherwise (or without a usable config) the files it serves now are read again.
        """
        listeners = config.listeners if config is not None else ()
        settings = {listener.endpoint: listener.tls for listener in listeners if listener.tls is not None}
        ok = True
        for endpoint, tls in self.tls.items():
            try:
                tls.reload(settings.get(endpoint))
            except TLSConfigError as error:
                ok = False
                self.log.error(
                    "reload: new certificate for {endpoint} refused, still serving the old one: {error}",
                    endpoint=endpoint,
                    error=str(error),
                )
            else:
                served = "; ".join(
                    f"{item.server_name or 'default'} {item.describe(self.now())}" for item in tls.served
                )
                self.log.info("reload: {endpoint} now serves {served}", endpoint=endpoint, served=served)
        return ok

    def _apply(self, config: Config) -> bool:
        """Build the Runtime of ``config`` and swap it in; listener changes are logged as needing a restart."""
        running = self.runtime.current
        if listener_shape(config.listeners) != listener_shape(running.config.listeners):
            self.log.warn(
                "reload: listeners changed in {source}; that needs a restart (still listening on {endpoints})",
                source=config.source,
                endpoints=", ".join(listener.endpoint for listener in running.config.listeners),
            )
        problems: list[Problem] = []
        fresh = self.builder.build(config, problems, running)
        if fresh is None:
            error = ConfigError(config.source or "(configuration)", problems)
            self.log.error("reload: endpoints refused, keeping the running ones: {error}", error=str(error))
            return False
        self.runtime.swap(fresh)
        apply_process_settings(fresh.config)
        self.log.info("reload: endpoints and limits apply to new connections; open ones keep theirs")
        return True
