"""How wsdaemon's own log options reach the program that runs it: ``twist`` or ``twistd``.

wsdaemon keeps its own ``--log-format`` and its own formatters (:mod:`wsdaemon.logs`:
Twisted's classic text lines at a tenth of the cost of Twisted's formatter, and flat JSON
records, one per line). What differs per runner is only how the chosen observer factory
is handed over, and each way is stated here:

* ``twistd``: the ``ILogObserver`` component of its application, the public way Twisted
  documents for choosing twistd's log observer ("Customizing twistd logging"). The
  observer writes where twistd's own would have, read from twistd's documented options:
  ``--logfile``, stdout with ``--nodaemon`` and no log file, ``twistd.log`` otherwise.
  ``--syslog`` and ``--logger`` choose twistd's own observers: those are left alone, and
  an explicit ``--log-format`` together with them is refused rather than ignored.
* ``twist``: it offers a plugin no public way to choose the observer. Its documented
  ``--log-format`` selects one of Twisted's own observers, whose text formatter costs
  about 50 µs a line against our 5 µs (one line per closed connection, a quarter of a
  handshake's cost). So wsdaemon puts its factory under :data:`TWIST_OBSERVER_KEY` of
  twist's options, where twist's own ``--log-format`` puts Twisted's. This one key is the
  only private detail of Twisted that wsdaemon depends on; nothing of twist is imported,
  the key is written only where twist's options already hold it, and the integration
  tests run the real ``twist`` and check the lines it writes.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import IO, Any

from twisted.application.service import IService, MultiService
from twisted.logger import FilteringLogObserver, ILogObserver, LogLevel, LogLevelFilterPredicate
from twisted.python import usage
from twisted.python.components import Componentized
from twisted.python.logfile import LogFile

from wsdaemon.logs import ObserverFactory

#: Where ``twist`` keeps the observer factory its runner will build (private to twist).
TWIST_OBSERVER_KEY = "fileLogObserverFactory"
#: twistd's own log options that replace its file observer; wsdaemon leaves those to twistd.
TWISTD_OWN_OBSERVERS = ("syslog", "logger")


def is_twistd(options: Mapping[str, Any]) -> bool:
    """Whether ``options`` are twistd's (they have its documented ``--logfile`` and ``--nodaemon``)."""
    return "logfile" in options and "nodaemon" in options


def is_twist(options: Mapping[str, Any]) -> bool:
    """Whether ``options`` are twist's (they hold the observer factory its runner will use)."""
    return TWIST_OBSERVER_KEY in options


def twistd_log_file(options: Mapping[str, Any]) -> IO[Any] | None:
    """Where twistd would write its log, from its options; None where twistd keeps its own observer.

    None for ``--syslog`` and ``--logger``, and for ``--logfile -`` without ``--nodaemon``
    (twistd refuses that itself, with its own message).
    """
    if any(options.get(name) for name in TWISTD_OWN_OBSERVERS):
        return None
    name = options.get("logfile")
    if name == "-" or (not name and options.get("nodaemon")):
        return sys.stdout if options.get("nodaemon") else None
    log_file: IO[Any] = LogFile.fromFullPath(name or "twistd.log")  # rotated by size, as twistd's own
    return log_file


class TwistdLogObserver(MultiService):
    """Runs ``service`` under twistd, and gives twistd's application wsdaemon's log observer.

    twistd asks its application for an ``ILogObserver`` component before it falls back on
    its own; the application is the parent twistd gives the service it got from
    ``makeService``, so the component is set here, as the service joins it.

    Args:
        service: the daemon.
        options: twistd's options (where its log goes).
        factory: wsdaemon's observer factory, for the chosen ``--log-format``.
    """

    def __init__(self, service: IService, options: Mapping[str, Any], factory: ObserverFactory) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # super(): mypy#16653
        self.addService(service)
        self.options = options
        self.factory = factory

    def setServiceParent(self, parent: Any) -> None:
        """Join twistd's application, giving it the observer unless it already has one."""
        if isinstance(parent, Componentized) and parent.getComponent(ILogObserver) is None:
            out = twistd_log_file(self.options)
            if out is not None:
                parent.setComponent(ILogObserver, at_info_level(self.factory(out)))
        super().setServiceParent(parent)  # type: ignore[no-untyped-call]  # super(): mypy#16653


def at_info_level(observer: ILogObserver) -> ILogObserver:
    """``observer`` seeing info and above: twistd has no ``--log-level``, so it gets twist's default.

    Without it twistd would write every debug event, e.g. Twisted's traceback of a
    plugin module that failed to import, which wsdaemon keeps for ``--log-level debug``
    and names in one line instead.
    """
    return FilteringLogObserver(observer, [LogLevelFilterPredicate(defaultLogLevel=LogLevel.info)])


def hand_log_format(options: usage.Options, log_format: str | None, factory: ObserverFactory) -> None:
    """Give the runner that parsed ``options`` (wsdaemon's, a sub-command of it) wsdaemon's log observer.

    Under twist, its observer factory is replaced (see the module docstring); under
    twistd the service is wrapped later (:func:`for_runner`). Without a runner (tests,
    embedding) nothing happens.

    Raises:
        usage.UsageError: an explicit ``--log-format`` together with twistd's ``--syslog``
            or ``--logger``, which would otherwise silently win.
    """
    parent = options.parent
    if parent is None:
        return
    if is_twist(parent):
        parent[TWIST_OBSERVER_KEY] = factory
    elif is_twistd(parent) and log_format is not None:
        chosen = [f"--{name}" for name in TWISTD_OWN_OBSERVERS if parent.get(name)]
        if chosen:
            raise usage.UsageError(f"--log-format cannot be used with twistd {' and '.join(chosen)}")


def for_runner(service: IService, options: usage.Options, factory: ObserverFactory) -> IService:
    """``service``, made ready for the runner that parsed ``options``: under twistd, with its log observer."""
    parent = options.parent
    if parent is not None and is_twistd(parent):
        return TwistdLogObserver(service, parent, factory)
    return service
