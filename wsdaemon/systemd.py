"""sd_notify(3) without libsystemd: state changes sent as datagrams to ``$NOTIFY_SOCKET``.

Rules for this file:

* Stdlib only. A message is ``KEY=VALUE`` lines in one datagram on an ``AF_UNIX``
  ``SOCK_DGRAM`` socket; an address starting with ``@`` is in the abstract namespace.
* Without ``NOTIFY_SOCKET`` (not run by systemd, or ``Type=simple``) every call does nothing.
* Notifying never stops the daemon: a failed send is logged once and forgotten.
* The watchdog interval comes from ``WATCHDOG_USEC`` (and ``WATCHDOG_PID``, when set, must be
  this process), exactly as ``sd_watchdog_enabled(3)`` reads them.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Mapping

from twisted.logger import Logger

Sender = Callable[[bytes, str], None]


def socket_address(address: str) -> str:
    """The ``sendto`` address for ``$NOTIFY_SOCKET``: ``@name`` means the abstract name ``\\0name``."""
    return "\0" + address[1:] if address.startswith("@") else address


def send_datagram(data: bytes, address: str) -> None:
    """Send one datagram to a Unix socket (the real sender)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
        sock.sendto(data, socket_address(address))


def watchdog_seconds(environ: Mapping[str, str], pid: int) -> float | None:
    """The watchdog timeout systemd set for this process (``WatchdogSec=``), or None."""
    usec = environ.get("WATCHDOG_USEC", "")
    owner = environ.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    if owner and owner != str(pid):
        return None  # meant for another process (we were started by one that was supervised)
    return int(usec) / 1_000_000


def monotonic_usec() -> int:
    """CLOCK_MONOTONIC in microseconds, which systemd wants with ``RELOADING=1``."""
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000


class Notifier:
    """Sends sd_notify messages to one socket; inert when there is none.

    Args:
        address: the value of ``$NOTIFY_SOCKET``, or None.
        send: how to deliver a datagram (tests pass a recorder; no socket is opened then).
    """

    log = Logger()

    def __init__(self, address: str | None, send: Sender = send_datagram) -> None:
        self.address = address or None
        self._send = send
        self._warned = False

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Notifier:
        """A notifier for ``$NOTIFY_SOCKET`` of ``environ`` (default: this process's)."""
        environ = os.environ if environ is None else environ
        return cls(environ.get("NOTIFY_SOCKET"))

    @property
    def enabled(self) -> bool:
        """Whether a service manager is listening."""
        return self.address is not None

    def notify(self, *fields: str) -> None:
        """Send ``fields`` (``KEY=VALUE`` strings) as one message."""
        if self.address is None:
            return
        data = "\n".join(fields).encode("utf-8")
        try:
            self._send(data, self.address)
        except OSError as error:
            if not self._warned:
                self._warned = True
                self.log.warn(
                    "cannot notify the service manager at {address}: {error}", address=self.address, error=error
                )

    def ready(self, status: str) -> None:
        """Startup (or a reload) finished: we are serving."""
        self.notify("READY=1", f"STATUS={status}")

    def reloading(self) -> None:
        """A reload started; ``ready`` follows when it is done."""
        self.notify("RELOADING=1", f"MONOTONIC_USEC={monotonic_usec()}", "STATUS=reloading")

    def stopping(self, status: str) -> None:
        """Shutdown started."""
        self.notify("STOPPING=1", f"STATUS={status}")

    def status(self, status: str) -> None:
        """A free-form one-line status (``systemctl status`` shows it)."""
        self.notify(f"STATUS={status}")

    def watchdog(self) -> None:
        """The reactor is alive."""
        self.notify("WATCHDOG=1")
