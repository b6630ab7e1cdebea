"""``--tls CERT KEY`` for the Twisted servers of bench/: one way to listen, with or without TLS.

With TLS the servers use Twisted's own ``CertificateOptions`` (what a Twisted
developer gets from ``PrivateCertificate.options()``), so "plain Twisted TLS
echo" is Twisted's TLS at its defaults, not a tuned copy of wsdaemon's.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from twisted.internet.interfaces import IReactorSSL, IReactorTCP
from twisted.internet.protocol import Factory
from twisted.internet.ssl import PrivateCertificate


def add_tls_argument(parser: argparse.ArgumentParser) -> None:
    """Add ``--tls CERT KEY`` (PEM files) to a server script's arguments."""
    parser.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"), help="listen with TLS (PEM certificate and key)")


def listen(reactor: IReactorTCP, port: int, factory: Factory, host: str, tls: list[str] | None) -> None:
    """Listen on ``host:port`` (backlog 1024), over TLS when ``tls`` names a certificate and a key."""
    if not tls:
        reactor.listenTCP(port, factory, backlog=1024, interface=host)
        return
    pem = Path(tls[0]).read_bytes() + Path(tls[1]).read_bytes()
    options = PrivateCertificate.loadPEM(pem).options()
    assert IReactorSSL.providedBy(reactor)
    reactor.listenSSL(port, factory, options, backlog=1024, interface=host)  # type: ignore[attr-defined]
