"""TLS for listeners: pyOpenSSL contexts with SNI, optional mutual TLS and reload without downtime.

Rules for this file:

* Every file is read once, parsed with ``cryptography`` (clear errors, no OpenSSL error
  stacks), and the parsed objects go into the contexts, so what was checked is what serves.
* A listener's contexts are built as one :class:`_ContextSet` and swapped in with one
  assignment: a reload either replaces all of them or, on any problem, none. Open connections
  keep the ``SSL.Connection`` (and so the context) they started with.
* Every problem names the config key, what was expected and what was found, like the config
  loader (:class:`~wsdaemon.config.Problem`); keys are relative to the listener.
* TLS is applied as a factory wrapper (:class:`TLSServerFactory`) around the daemon's
  factory, so it works on any stream endpoint, adopted systemd sockets included.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from OpenSSL import SSL
from twisted.internet.interfaces import IAddress, IOpenSSLServerConnectionCreator, IProtocolFactory, IReactorTime
from twisted.protocols.tls import TLSMemoryBIOFactory, TLSMemoryBIOProtocol
from zope.interface import implementer

from wsdaemon.adapter.tls_connection import DaemonTLSProtocol
from wsdaemon.config import Config, Problem, TLSConfig

#: Mozilla's "intermediate" TLS 1.2 suites (forward secret AEAD only); TLS 1.3 suites are
#: OpenSSL's defaults, all of them modern.
MODERN_CIPHERS = (
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
    "DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305"
)
_MIN_VERSIONS = {"1.2": SSL.TLS1_2_VERSION, "1.3": SSL.TLS1_3_VERSION}
#: DESIGN §4: only HTTP/1.1 can carry the upgrade (RFC 8441 over h2 is out of scope).
ALPN_PROTOCOL = b"http/1.1"
_SESSION_ID_CONTEXT = b"wsdaemon"
_VERIFY_MODES = {
    "optional": SSL.VERIFY_PEER | SSL.VERIFY_CLIENT_ONCE,
    "required": SSL.VERIFY_PEER | SSL.VERIFY_CLIENT_ONCE | SSL.VERIFY_FAIL_IF_NO_PEER_CERT,
}


class TLSConfigError(Exception):
    """Certificates or TLS settings that cannot be used; ``problems`` name each key."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__(problems)
        self.problems = problems

    def __str__(self) -> str:
        return "; ".join(f"{p.key}: expected {p.expected}, got {p.got}" for p in self.problems)


@dataclass(frozen=True)
class ServedCertificate:
    """One certificate a listener serves, as loaded: for logs, expiry warnings and --check-config."""

    key: str  # the config key of its file, e.g. "certificate" or "sni[0].certificate"
    path: str
    server_name: str | None  # None for the default certificate
    subject: str
    dns_names: tuple[str, ...]
    not_after: datetime.datetime
    ip_addresses: tuple[str, ...] = ()  # subjectAltName IP entries, for clients that connect by address

    def days_left(self, now: datetime.datetime) -> float:
        """Days until it expires (negative once expired)."""
        return (self.not_after - now).total_seconds() / 86400.0

    def describe(self, now: datetime.datetime) -> str:
        """One line: file, subject, names (DNS, then IP addresses if any) and expiry."""
        names = ", ".join(self.dns_names) or "(no DNS names)"
        addresses = f"; IP addresses {', '.join(self.ip_addresses)}" if self.ip_addresses else ""
        expiry = f"{self.not_after:%Y-%m-%d} ({self.days_left(now):.0f} days left)"
        return f"{self.path}: {self.subject}; names {names}{addresses}; expires {expiry}"

    def name_warning(self) -> str | None:
        """Why clients will reject this certificate's names, or None when it has a DNS name.

        Clients match the host name they connect to against the subjectAltName DNS
        entries only (RFC 6125 §6.4.4; browsers ignore the subject's CN), and an
        address only against its IP entries.
        """
        if self.dns_names:
            return None
        if self.ip_addresses:
            return (
                f"certificate {self.path} ({self.subject}) has no DNS names, only IP addresses "
                f"({', '.join(self.ip_addresses)}): clients that connect by host name will reject it"
            )
        return (
            f"certificate {self.path} ({self.subject}) has no DNS names in its subjectAltName: "
            "clients will reject it (they ignore the subject's CN)"
        )


@dataclass(frozen=True)
class _Material:
    """A certificate chain and its key, parsed and checked to belong together."""

    chain: tuple[x509.Certificate, ...]
    key: PrivateKeyTypes


def _read(path: str, key: str, what: str, problems: list[Problem]) -> bytes | None:
    try:
        with open(path, "rb") as stream:
            return stream.read()
    except OSError as error:
        problems.append(Problem(key, f"a readable {what}", f"{path!r} ({error.strerror or error})"))
        return None


def _certificates(path: str, key: str, what: str, problems: list[Problem]) -> tuple[x509.Certificate, ...]:
    """The PEM certificates in ``path`` (the leaf first for a chain)."""
    data = _read(path, key, what, problems)
    if data is None:
        return ()
    try:
        return tuple(x509.load_pem_x509_certificates(data))
    except ValueError:
        problems.append(Problem(key, what, f"{path!r} (no PEM certificate in it)"))
        return ()


def _private_key(path: str, key: str, problems: list[Problem]) -> PrivateKeyTypes | None:
    data = _read(path, key, "PEM private key", problems)
    if data is None:
        return None
    try:
        return serialization.load_pem_private_key(data, password=None)
    except TypeError:  # cryptography's way of saying "it is encrypted"
        problems.append(Problem(key, "an unencrypted PEM private key", f"{path!r} (encrypted)"))
    except (ValueError, UnsupportedAlgorithm):
        problems.append(Problem(key, "a PEM private key", f"{path!r} (not a private key OpenSSL can use)"))
    return None


def _public_der(key: Any) -> bytes:
    return bytes(key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo))


def load_material(certificate: str, private_key: str, prefix: str, problems: list[Problem]) -> _Material | None:
    """Read a chain and its key; a mismatch or unreadable file is a problem under ``prefix``."""
    chain = _certificates(certificate, f"{prefix}certificate", "a PEM certificate chain", problems)
    key = _private_key(private_key, f"{prefix}private_key", problems)
    if not chain or key is None:
        return None
    if _public_der(chain[0].public_key()) != _public_der(key.public_key()):
        got = f"{private_key!r} (it does not belong to the first certificate in {certificate!r})"
        problems.append(Problem(f"{prefix}private_key", "the private key of the certificate", got))
        return None
    return _Material(chain, key)


def _alt_names(certificate: x509.Certificate) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The subjectAltName's DNS names and IP addresses (both empty without the extension)."""
    try:
        extension = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return (), ()
    addresses = tuple(str(address) for address in extension.value.get_values_for_type(x509.IPAddress))
    return tuple(extension.value.get_values_for_type(x509.DNSName)), addresses


def _served(material: _Material, key: str, path: str, server_name: str | None) -> ServedCertificate:
    leaf = material.chain[0]
    dns_names, addresses = _alt_names(leaf)
    subject = leaf.subject.rfc4514_string()
    return ServedCertificate(key, path, server_name, subject, dns_names, leaf.not_valid_after_utc, addresses)


def select_alpn(connection: SSL.Connection, offered: list[bytes]) -> bytes | Any:
    """ALPN (RFC 7301): http/1.1 when offered; otherwise go on without ALPN rather than fail."""
    return ALPN_PROTOCOL if ALPN_PROTOCOL in offered else SSL.NO_OVERLAPPING_PROTOCOLS


def normalize_server_name(raw: bytes | None) -> str | None:
    """The SNI host name as sent (RFC 6066 §3: ASCII, A-labels), lower case, without a final dot."""
    if not raw:
        return None
    return raw.decode("ascii", "replace").lower().rstrip(".")


def match_server_name(name: str | None, names: Sequence[str]) -> str | None:
    """The configured name that serves ``name``: an exact match first, then a one-label wildcard.

    RFC 6125 §6.4.3: ``*.example.com`` covers ``a.example.com`` but neither
    ``example.com`` nor ``a.b.example.com``.
    """
    if name is None:
        return None
    if name in names:
        return name
    _, dot, parent = name.partition(".")
    wildcard = f"*.{parent}"
    return wildcard if dot and parent and wildcard in names else None


@dataclass(frozen=True)
class _ContextSet:
    """Everything one listener serves at a time: the default context and one per SNI name."""

    default: SSL.Context
    by_name: dict[str, SSL.Context]
    served: tuple[ServedCertificate, ...]


@implementer(IOpenSSLServerConnectionCreator)
class ServerTLS:
    """A TLS listener's contexts: builds them from a :class:`TLSConfig`, serves and reloads them.

    Raises:
        TLSConfigError: from the constructor, when a file or setting cannot be used.
    """

    def __init__(self, settings: TLSConfig) -> None:
        self.settings = settings
        self._contexts = self._build(settings)

    @property
    def served(self) -> tuple[ServedCertificate, ...]:
        """The certificates in use right now, the default first."""
        return self._contexts.served

    def serverConnectionForTLS(self, tlsProtocol: TLSMemoryBIOProtocol) -> SSL.Connection:
        """A connection on the current default context; SNI may switch it during the handshake."""
        return SSL.Connection(self._contexts.default, None)

    def reload(self, settings: TLSConfig | None = None) -> None:
        """Re-read the files (of ``settings``, or the current ones) and use them for new connections.

        Raises:
            TLSConfigError: nothing changed; the certificates in use stay in use.
        """
        settings = settings or self.settings
        self._contexts = self._build(settings)
        self.settings = settings

    def _build(self, settings: TLSConfig) -> _ContextSet:
        problems: list[Problem] = []
        default = load_material(settings.certificate, settings.private_key, "", problems)
        extra = [
            (entry, load_material(entry.certificate, entry.private_key, f"sni[{i}].", problems))
            for i, entry in enumerate(settings.sni)
        ]
        client_cas = self._client_cas(settings, problems)
        if problems or default is None:
            raise TLSConfigError(problems)
        by_name: dict[str, SSL.Context] = {}
        served = [_served(default, "certificate", settings.certificate, None)]
        for index, (entry, material) in enumerate(extra):
            assert material is not None  # any failure was a problem, raised above
            by_name[entry.server_name] = self._context(material, settings, client_cas, None, problems)
            served.append(_served(material, f"sni[{index}].certificate", entry.certificate, entry.server_name))
        context = self._context(default, settings, client_cas, by_name, problems)
        if problems:
            raise TLSConfigError(problems[:1])  # the same setting fails the same way in each context
        return _ContextSet(context, by_name, tuple(served))

    @staticmethod
    def _client_cas(settings: TLSConfig, problems: list[Problem]) -> tuple[x509.Certificate, ...]:
        if settings.client_ca is None:
            return ()
        return _certificates(settings.client_ca, "client_ca", "a PEM file of CA certificates", problems)

    @staticmethod
    def _context(
        material: _Material,
        settings: TLSConfig,
        client_cas: tuple[x509.Certificate, ...],
        sni: dict[str, SSL.Context] | None,
        problems: list[Problem],
    ) -> SSL.Context:
        """One context: TLS >= min version, our ciphers, ALPN, the chain, and mTLS if configured.

        Every context of a listener gets the same settings, because OpenSSL keeps the verify
        mode of the context a connection started on when SNI switches it to another. Only the
        default context (where every connection starts) gets the SNI map ``sni``.
        """
        context = SSL.Context(SSL.TLS_METHOD)
        context.set_min_proto_version(_MIN_VERSIONS[settings.min_tls_version])
        context.set_options(SSL.OP_NO_COMPRESSION | SSL.OP_CIPHER_SERVER_PREFERENCE | SSL.OP_NO_RENEGOTIATION)
        # An idle connection gives its read and write buffers (about 34 KiB) back to OpenSSL's
        # pool; Twisted's own CertificateOptions does the same.
        context.set_mode(SSL.MODE_RELEASE_BUFFERS)
        try:
            context.set_cipher_list((settings.ciphers or MODERN_CIPHERS).encode("ascii"))
        except (SSL.Error, UnicodeEncodeError):
            problems.append(
                Problem("ciphers", "an OpenSSL cipher list naming at least one usable suite", repr(settings.ciphers))
            )
        context.use_certificate(material.chain[0])
        for certificate in material.chain[1:]:
            context.add_extra_chain_cert(certificate)
        context.use_privatekey(material.key)  # type: ignore[arg-type]  # any key cryptography loads
        context.check_privatekey()
        context.set_alpn_select_callback(select_alpn)
        context.set_session_id(_SESSION_ID_CONTEXT)
        if client_cas and settings.client_ca is not None:
            context.load_verify_locations(settings.client_ca)
            for authority in client_cas:
                context.add_client_ca(authority)
            context.set_verify(_VERIFY_MODES[settings.client_certs])
        if sni:
            context.set_tlsext_servername_callback(_sni_switcher(sni))
        return context

    def name_warnings(self) -> list[str]:
        """One line per served certificate whose names clients will reject (no DNS name at all)."""
        return [warning for served in self.served if (warning := served.name_warning()) is not None]

    def expiry_warnings(self, now: datetime.datetime) -> list[str]:
        """One line per certificate expiring within ``expiry_warning_days`` (or already expired)."""
        days = self.settings.expiry_warning_days
        lines = []
        for served in self.served:
            left = served.days_left(now)
            if left < 0:
                lines.append(f"certificate {served.path} ({served.subject}) EXPIRED on {served.not_after:%Y-%m-%d}")
            elif left < days:
                lines.append(
                    f"certificate {served.path} ({served.subject}) expires on {served.not_after:%Y-%m-%d}, in {left:.1f} days"
                )
        return lines


def _sni_switcher(by_name: dict[str, SSL.Context]) -> Callable[[SSL.Connection], None]:
    """The servername callback (RFC 6066 §3): switch to the SNI name's context, if one matches."""
    names = tuple(by_name)

    def switch(connection: SSL.Connection) -> None:
        matched = match_server_name(normalize_server_name(connection.get_servername()), names)
        if matched is not None:
            connection.set_context(by_name[matched])

    return switch


class TLSServerFactory(TLSMemoryBIOFactory):
    """TLS around the daemon's factory; a connection the inner factory refuses is refused here too.

    Its connections are Twisted's :class:`TLSMemoryBIOProtocol` (as
    :class:`~wsdaemon.adapter.tls_connection.DaemonTLSProtocol`, which sends the records
    that answer a read at once), not the factory's default ``BufferingTLSTransport``. That
    one copies every write into a buffer and encrypts it on the next reactor turn (a
    ``callLater`` per write burst) to merge small writes; the WebSocket adapter already
    writes once per turn and connection, so the second batching only added a timer and two
    copies of each message (a 1 MiB echo ran at half speed, and the timer was 13-17% of a
    small-message wss profile).
    """

    protocol = DaemonTLSProtocol

    def __init__(self, tls: ServerTLS, wrappedFactory: IProtocolFactory, reactor: IReactorTime) -> None:
        super().__init__(tls, False, wrappedFactory, clock=reactor)
        self.tls = tls

    def buildProtocol(self, addr: IAddress | None) -> TLSMemoryBIOProtocol | None:  # type: ignore[override]
        """Wrap the inner protocol, or return None (close at accept) when it refused, e.g. at max_connections."""
        inner = self.wrappedFactory.buildProtocol(addr)
        if inner is None:
            return None
        return self.protocol(self, inner)  # type: ignore[no-untyped-call]  # Twisted types BufferingTLSTransport only


def build_listener_tls(config: Config, problems: list[Problem]) -> dict[str, ServerTLS]:
    """Each TLS listener's contexts by endpoint string; failures are added to ``problems``."""
    built: dict[str, ServerTLS] = {}
    for index, listener in enumerate(config.listeners):
        if listener.tls is None:
            continue
        try:
            built[listener.endpoint] = ServerTLS(listener.tls)
        except TLSConfigError as error:
            problems.extend(Problem(f"listeners[{index}].{p.key}", p.expected, p.got) for p in error.problems)
    return built
