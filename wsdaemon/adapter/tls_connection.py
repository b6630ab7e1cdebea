"""The TLS connection of a daemon's listener: Twisted's, sending answers at once, ending without a cycle."""

from __future__ import annotations

from twisted.python.failure import Failure

from wsdaemon.adapter.immediate import ImmediateTLSProtocol


class DaemonTLSProtocol(ImmediateTLSProtocol):
    """A listener's TLS connection: Twisted's, sending answers at once, and ending without a garbage cycle.

    A client that closes TCP without TLS's ``close_notify`` (Python's ``ssl`` clients, for
    one) makes OpenSSL's last read fail, and Twisted keeps that error as a ``Failure`` made
    inside its ``except``: the failure's traceback holds the frame that holds the failure.
    Every such connection was left to the cyclic garbage collector, with its
    ``SSL.Connection`` and the tens of KiB OpenSSL keeps for it; connections opened long
    before are in the collector's older generations, which it looks at least often.
    ``cleanFailure`` (public ``Failure`` API) turns the traceback into text first.

    This overrides Twisted's private ``_tlsShutdownFinished``: a Twisted that renamed it
    would just not call this, and tests/integration/test_tls_cycles.py would fail.
    """

    def _tlsShutdownFinished(self, reason: Failure | None) -> None:
        if reason is not None:
            reason.cleanFailure()
        super()._tlsShutdownFinished(reason)  # type: ignore[no-untyped-call]
