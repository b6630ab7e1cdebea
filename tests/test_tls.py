"""TLS contexts of wsdaemon.tls: certificates, SNI, ALPN, versions, mutual TLS and reload.

Handshakes run in memory (pyOpenSSL memory BIOs, and ``twisted.test.iosim`` for the whole
stack): no socket is opened. Certificates are made fresh for each test with ``cryptography``.
"""

from __future__ import annotations

import dataclasses
import datetime
from pathlib import Path

import pytest
from OpenSSL import SSL
from twisted.internet.address import IPv4Address
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.ssl import Certificate, PrivateCertificate, optionsForClientTLS
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.test import iosim

from tests.adapter.recording import RecordingFactory
from tests.certs import Issued, ThrowawayCA
from tests.web.stack import Stack, upgrade_request
from wsdaemon.config import Config, ListenerConfig, SNIConfig, TLSConfig, default_config
from wsdaemon.tls import ServerTLS, TLSConfigError, TLSServerFactory, build_listener_tls, match_server_name


@pytest.fixture
def ca(tmp_path: Path) -> ThrowawayCA:
    """A fresh CA in this test's folder."""
    return ThrowawayCA(tmp_path / "pki")


@pytest.fixture
def server(ca: ThrowawayCA) -> Issued:
    """The default server certificate, for localhost."""
    return ca.issue("localhost", ("localhost",), stem="server")


def settings(server: Issued, **changes) -> TLSConfig:
    return dataclasses.replace(TLSConfig(str(server.cert_path), str(server.key_path)), **changes)


class Handshake:
    """One client and one server ``SSL.Connection`` joined by memory BIOs."""

    def __init__(
        self,
        tls: ServerTLS,
        ca: ThrowawayCA,
        *,
        server_name: str | None = "localhost",
        client_cert: Issued | None = None,
        alpn: list[bytes] | None = None,
        max_version: int | None = None,
        client_ciphers: bytes | None = None,
    ) -> None:
        context = SSL.Context(SSL.TLS_CLIENT_METHOD)
        context.load_verify_locations(str(ca.path))
        context.set_verify(SSL.VERIFY_PEER)
        if client_cert is not None:
            context.use_certificate_chain_file(str(client_cert.cert_path))
            context.use_privatekey_file(str(client_cert.key_path))
        if alpn is not None:
            context.set_alpn_protos(alpn)
        if max_version is not None:
            context.set_min_proto_version(0)
            context.set_max_proto_version(max_version)
        if client_ciphers is not None:
            context.set_cipher_list(client_ciphers)
        self.client = SSL.Connection(context, None)
        if server_name is not None:
            self.client.set_tlsext_host_name(server_name.encode("ascii"))
        self.client.set_connect_state()
        self.server = tls.serverConnectionForTLS(None)
        self.server.set_accept_state()
        self.pump()

    def pump(self) -> None:
        """Move bytes both ways until nothing moves; SSL.Error from either side propagates."""
        for _ in range(50):
            for connection in (self.client, self.server):
                try:
                    connection.do_handshake()
                except SSL.WantReadError:
                    pass
            moved = False
            for source, sink in ((self.client, self.server), (self.server, self.client)):
                try:
                    sink.bio_write(source.bio_read(1 << 16))
                    moved = True
                except SSL.WantReadError:
                    pass
            if not moved:
                return

    def served_serial(self) -> int:
        """The serial number of the certificate the server presented."""
        certificate = self.client.get_peer_certificate(as_cryptography=True)
        assert certificate is not None
        return certificate.serial_number

    def echo(self, data: bytes) -> bytes:
        """Send application data client -> server and read it there (the connection still works)."""
        self.client.send(data)
        self.pump()
        return self.server.recv(1 << 16)


# --- what each connection keeps ---------------------------------------------------------------


def test_every_context_releases_idle_buffers(ca, server):
    """OpenSSL's release-buffers mode is on for the default and every SNI context.

    Without it each idle wss connection keeps its 16 KiB read and write
    buffers: 51.6 KiB per idle connection against Twisted's own TLS at 25.6.
    ``SSL_CTX_set_mode`` ORs bits in and answers the whole mask, so setting
    nothing reads it (on contexts no connection has used yet: pyOpenSSL
    refuses to change a used one).
    """
    other = ca.issue("ws.example.test", ("ws.example.test",), stem="other")
    tls = ServerTLS(settings(server, sni=(SNIConfig("ws.example.test", str(other.cert_path), str(other.key_path)),)))
    contexts = tls._contexts  # our own: no connection was made on them yet
    for context in (contexts.default, *contexts.by_name.values()):
        assert context.set_mode(0) & SSL.MODE_RELEASE_BUFFERS


def test_read_size_and_send_chunk_reach_the_tcp_connection_under_tls(server):
    """Under TLS the socket tuning lands on the TCP transport, not on the TLS wrapper in front of it.

    ``TLSMemoryBIOProtocol`` forwards attribute reads to the transport below but
    keeps attribute writes: set on it, ``bufferSize`` and ``SEND_LIMIT`` would
    never reach the socket, and wss would lose the plain path's tuning.
    """
    from twisted.internet import tcp
    from twisted.internet.testing import MemoryReactorClock, StringTransport

    from tests.adapter.recording import RecordingHandler
    from wsdaemon.adapter.protocol import WebSocketWireProtocol
    from wsdaemon.core import Connection, Limits, Side

    class TCPLikeTransport(StringTransport):
        bufferSize = tcp.Connection.bufferSize
        SEND_LIMIT = tcp.Connection.SEND_LIMIT

    limits = Limits().replace(write_buffer_high_bytes=300_000, send_chunk_bytes=700_000)
    protocol = WebSocketWireProtocol(RecordingHandler(), Connection(Side.SERVER, limits), MemoryReactorClock())
    factory = TLSMemoryBIOFactory(ServerTLS(settings(server)), False, Factory.forProtocol(lambda: protocol))
    tls_protocol = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
    socket = TCPLikeTransport()
    tls_protocol.makeConnection(socket)
    assert protocol.transport is tls_protocol
    assert (socket.bufferSize, socket.SEND_LIMIT) == (300_000, 700_000)
    assert "bufferSize" not in vars(tls_protocol) and "SEND_LIMIT" not in vars(tls_protocol)


def test_a_write_is_encrypted_and_handed_to_tcp_at_once_without_a_timer(ca, server):
    """The listener's TLS sends each write now: no copy held for a ``callLater(0)`` flush.

    Twisted's default ``BufferingTLSTransport`` batches writes until the next reactor
    turn; the WebSocket adapter already writes once per turn, so that second batching
    only cost a timer per write and two copies of each message (1 MiB wss echo at 0.55x).
    """
    from twisted.internet.testing import MemoryReactorClock, StringTransport

    clock = MemoryReactorClock()
    tls_protocol = TLSServerFactory(ServerTLS(settings(server)), Factory.forProtocol(Protocol), clock).buildProtocol(
        IPv4Address("TCP", "127.0.0.1", 40000)
    )
    wire = StringTransport()
    tls_protocol.makeConnection(wire)
    context = SSL.Context(SSL.TLS_CLIENT_METHOD)
    context.load_verify_locations(str(ca.path))
    client = SSL.Connection(context, None)
    client.set_connect_state()
    for _ in range(10):  # the handshake, over memory BIOs on the client side
        try:
            client.do_handshake()
        except SSL.WantReadError:
            pass
        try:
            tls_protocol.dataReceived(client.bio_read(1 << 16))
        except SSL.WantReadError:
            pass
        if wire.value():
            client.bio_write(wire.value())
            wire.clear()
    client.do_handshake()
    for size in (64, 1 << 20):
        message = (bytes(range(256)) * (size // 256 + 1))[:size]
        tls_protocol.write(message)
        assert clock.getDelayedCalls() == [], "nothing waits for a later reactor turn"
        client.bio_write(wire.value())
        wire.clear()
        received = b""
        while len(received) < size:
            received += client.recv(1 << 16)
        assert received == message


# --- certificates and SNI --------------------------------------------------------------------


def test_default_certificate_is_served_without_sni(ca, server):
    """A client that sends no server name gets the listener's default certificate."""
    handshake = Handshake(ServerTLS(settings(server)), ca, server_name=None)
    assert handshake.served_serial() == server.serial


def test_sni_selects_the_certificate_for_the_name(ca, server):
    """A client asking for an SNI name gets that entry's certificate; other names get the default."""
    other = ca.issue("ws.example.test", ("ws.example.test",), stem="ws")
    tls = ServerTLS(settings(server, sni=(SNIConfig("ws.example.test", str(other.cert_path), str(other.key_path)),)))
    assert Handshake(tls, ca, server_name="ws.example.test").served_serial() == other.serial
    assert Handshake(tls, ca, server_name="localhost").served_serial() == server.serial


def test_wildcard_sni_covers_one_label(ca, server):
    """ "*.example.test" serves a.example.test, but not a.b.example.test or example.test (they get the default)."""
    wildcard = ca.issue("*.example.test", ("*.example.test",), stem="wild")
    tls = ServerTLS(
        settings(server, sni=(SNIConfig("*.example.test", str(wildcard.cert_path), str(wildcard.key_path)),))
    )
    assert Handshake(tls, ca, server_name="a.example.test").served_serial() == wildcard.serial
    assert Handshake(tls, ca, server_name="a.b.example.test").served_serial() == server.serial
    assert Handshake(tls, ca, server_name="example.test").served_serial() == server.serial


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("ws.example.test", "ws.example.test"),
        ("a.example.test", "*.example.test"),
        ("a.b.example.test", None),
        ("example.test", None),
        ("other.test", None),
        (None, None),
    ],
)
def test_match_server_name_prefers_exact_then_one_label_wildcard(name, expected):
    """Exact names win over wildcards; a wildcard matches exactly one left-most label (RFC 6125 §6.4.3)."""
    assert match_server_name(name, ("*.example.test", "ws.example.test")) == expected


# --- protocol versions, ciphers and ALPN --------------------------------------------------------


def test_alpn_selects_http_1_1(ca, server):
    """ALPN answers http/1.1 when the client offers it, even after h2."""
    handshake = Handshake(ServerTLS(settings(server)), ca, alpn=[b"h2", b"http/1.1"])
    assert handshake.client.get_alpn_proto_negotiated() == b"http/1.1"


def test_alpn_without_http_1_1_goes_on_without_alpn(ca, server):
    """A client offering only h2 is not failed; it simply gets no ALPN protocol."""
    handshake = Handshake(ServerTLS(settings(server)), ca, alpn=[b"h2"])
    assert handshake.client.get_alpn_proto_negotiated() == b""


def test_tls_1_2_is_accepted(ca, server):
    """A TLS 1.2 client connects (the default minimum is 1.2)."""
    handshake = Handshake(ServerTLS(settings(server)), ca, max_version=SSL.TLS1_2_VERSION)
    assert handshake.client.get_protocol_version_name() == "TLSv1.2"


def test_tls_1_1_is_refused(ca, server):
    """A client that speaks at most TLS 1.1 is refused."""
    with pytest.raises(SSL.Error):
        Handshake(
            ServerTLS(settings(server)), ca, max_version=SSL.TLS1_1_VERSION, client_ciphers=b"DEFAULT:@SECLEVEL=0"
        )


def test_min_tls_version_1_3_refuses_tls_1_2(ca, server):
    """min_tls_version = "1.3" refuses a TLS 1.2 client."""
    with pytest.raises(SSL.Error):
        Handshake(ServerTLS(settings(server, min_tls_version="1.3")), ca, max_version=SSL.TLS1_2_VERSION)


def test_non_forward_secret_cipher_is_refused(ca, server):
    """The default TLS 1.2 cipher list has no static-RSA, CBC suites."""
    with pytest.raises(SSL.Error):
        Handshake(ServerTLS(settings(server)), ca, max_version=SSL.TLS1_2_VERSION, client_ciphers=b"AES128-SHA")


def test_bad_cipher_list_is_a_problem(server):
    """A cipher list naming no usable suite is reported under the ciphers key."""
    with pytest.raises(TLSConfigError) as raised:
        ServerTLS(settings(server, ciphers="NOTHING-USABLE"))
    assert [problem.key for problem in raised.value.problems] == ["ciphers"]


# --- mutual TLS --------------------------------------------------------------------------------


def test_required_client_certificate_refuses_a_client_without_one(ca, server):
    """client_certs = "required": a client with no certificate fails the handshake."""
    tls = ServerTLS(settings(server, client_ca=str(ca.path), client_certs="required"))
    with pytest.raises(SSL.Error):
        Handshake(tls, ca)


def test_required_client_certificate_accepts_a_signed_one(ca, server):
    """A client certificate signed by client_ca is accepted and its subject is visible to the server."""
    alice = ca.issue("alice", client=True)
    tls = ServerTLS(settings(server, client_ca=str(ca.path), client_certs="required"))
    handshake = Handshake(tls, ca, client_cert=alice)
    peer = handshake.server.get_peer_certificate(as_cryptography=True)
    assert peer is not None and peer.subject.rfc4514_string() == "CN=alice,O=wsdaemon tests"


def test_client_certificate_from_another_ca_is_refused(ca, server, tmp_path):
    """Even when optional, a client certificate the client_ca did not sign fails the handshake."""
    mallory = ThrowawayCA(tmp_path / "other", "other CA").issue("mallory", client=True)
    tls = ServerTLS(settings(server, client_ca=str(ca.path), client_certs="optional"))
    with pytest.raises(SSL.Error):
        Handshake(tls, ca, client_cert=mallory)


def test_optional_client_certificate_allows_none(ca, server):
    """client_certs = "optional": a client without a certificate connects, with no peer certificate."""
    tls = ServerTLS(settings(server, client_ca=str(ca.path), client_certs="optional"))
    handshake = Handshake(tls, ca)
    assert handshake.server.get_peer_certificate() is None


def test_sni_certificates_enforce_mutual_tls_too(ca, server):
    """A connection switched to an SNI certificate still requires the client certificate."""
    other = ca.issue("ws.example.test", ("ws.example.test",), stem="ws")
    sni = (SNIConfig("ws.example.test", str(other.cert_path), str(other.key_path)),)
    tls = ServerTLS(settings(server, sni=sni, client_ca=str(ca.path), client_certs="required"))
    with pytest.raises(SSL.Error):
        Handshake(tls, ca, server_name="ws.example.test")


# --- loading problems ------------------------------------------------------------------------


def test_missing_certificate_file_names_the_key_and_path(server, tmp_path):
    """An unreadable certificate is reported under "certificate" with its path and the OS error."""
    with pytest.raises(TLSConfigError) as raised:
        ServerTLS(settings(server, certificate=str(tmp_path / "nope.pem")))
    (problem,) = raised.value.problems
    assert problem.key == "certificate" and "nope.pem" in problem.got and "No such file" in problem.got


def test_key_of_another_certificate_is_refused(ca, server):
    """A private key that does not belong to the certificate is reported under private_key."""
    other = ca.issue("other", ("other",))
    with pytest.raises(TLSConfigError) as raised:
        ServerTLS(settings(server, private_key=str(other.key_path)))
    assert [problem.key for problem in raised.value.problems] == ["private_key"]
    assert "does not belong" in raised.value.problems[0].got


def test_garbage_files_are_refused_with_both_keys(server, tmp_path):
    """Files with no PEM content are reported for certificate and private_key at once."""
    junk = tmp_path / "junk.pem"
    junk.write_text("not pem\n")
    with pytest.raises(TLSConfigError) as raised:
        ServerTLS(settings(server, certificate=str(junk), private_key=str(junk)))
    assert sorted(problem.key for problem in raised.value.problems) == ["certificate", "private_key"]


def test_problems_are_prefixed_with_the_listener(server, tmp_path):
    """build_listener_tls names each problem by its listener, as the config loader does."""
    broken = TLSConfig(str(tmp_path / "missing.pem"), str(server.key_path))
    config = dataclasses.replace(default_config(), listeners=(ListenerConfig("tcp:1"), ListenerConfig("tcp:2", broken)))
    problems: list = []
    assert build_listener_tls(config, problems) == {}
    assert [problem.key for problem in problems] == ["listeners[1].certificate"]


def test_build_listener_tls_skips_plain_listeners(server):
    """Only listeners with tls get contexts, keyed by their endpoint string."""
    config: Config = dataclasses.replace(
        default_config(), listeners=(ListenerConfig("tcp:1"), ListenerConfig("tcp:2", settings(server)))
    )
    built = build_listener_tls(config, [])
    assert list(built) == ["tcp:2"]


# --- reload ------------------------------------------------------------------------------------


def replace_files(target: Issued, source: Issued) -> None:
    """Overwrite ``target``'s files with ``source``'s, as a renewal (certbot) would."""
    target.cert_path.write_bytes(source.cert_path.read_bytes())
    target.key_path.write_bytes(source.key_path.read_bytes())


def test_reload_serves_the_renewed_certificate_to_new_connections(ca, server):
    """After the files are replaced and reload() runs, a new connection gets the new certificate."""
    tls = ServerTLS(settings(server))
    renewed = ca.issue("localhost", ("localhost",), stem="renewed")
    replace_files(server, renewed)
    assert Handshake(tls, ca).served_serial() == server.serial
    tls.reload()
    assert Handshake(tls, ca).served_serial() == renewed.serial


def test_open_connection_survives_a_reload(ca, server):
    """A connection made before the reload keeps working on its old certificate."""
    tls = ServerTLS(settings(server))
    before = Handshake(tls, ca)
    replace_files(server, ca.issue("localhost", ("localhost",), stem="renewed"))
    tls.reload()
    assert before.echo(b"still here") == b"still here"
    assert before.served_serial() == server.serial


def test_broken_new_certificate_is_refused_and_the_old_one_kept(ca, server):
    """A reload that finds a broken file raises, and new connections still get the old certificate."""
    tls = ServerTLS(settings(server))
    server.cert_path.write_text("-----BEGIN CERTIFICATE-----\ntruncated\n")
    with pytest.raises(TLSConfigError):
        tls.reload()
    assert Handshake(tls, ca).served_serial() == server.serial


def test_reload_of_mismatched_renewal_keeps_the_old_pair(ca, server):
    """A renewal that replaced only the certificate (not its key) is refused as a whole."""
    tls = ServerTLS(settings(server))
    renewed = ca.issue("localhost", ("localhost",), stem="renewed")
    server.cert_path.write_bytes(renewed.cert_path.read_bytes())
    with pytest.raises(TLSConfigError):
        tls.reload()
    assert tls.served[0].subject == "CN=localhost,O=wsdaemon tests"
    assert Handshake(tls, ca).served_serial() == server.serial


# --- expiry ------------------------------------------------------------------------------------


def test_certificate_close_to_expiry_gives_a_warning(ca):
    """A certificate with fewer than expiry_warning_days left is named in a warning."""
    soon = ca.issue("localhost", ("localhost",), days=5, stem="soon")
    tls = ServerTLS(TLSConfig(str(soon.cert_path), str(soon.key_path)))
    (warning,) = tls.expiry_warnings(datetime.datetime.now(datetime.UTC))
    assert "soon.crt" in warning and "expires on" in warning


def test_certificate_far_from_expiry_gives_no_warning(server):
    """A certificate with 90 days left gives no warning at the default 14 days."""
    assert ServerTLS(settings(server)).expiry_warnings(datetime.datetime.now(datetime.UTC)) == []


def test_expired_certificate_is_called_expired(server):
    """Past its end date, the warning says EXPIRED."""
    later = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=100)
    (warning,) = ServerTLS(settings(server)).expiry_warnings(later)
    assert "EXPIRED" in warning


# --- the factory wrapper and the whole stack --------------------------------------------------------


def test_tls_factory_refuses_what_the_inner_factory_refuses(server):
    """When the wrapped factory returns None (max_connections), the TLS factory returns None too."""

    class Refusing(Factory):
        def buildProtocol(self, addr):
            return None

    factory = TLSServerFactory(ServerTLS(settings(server)), Refusing(), Stack().clock)
    assert factory.buildProtocol(IPv4Address("TCP", "192.0.2.1", 1)) is None


class RawClient(Protocol):
    """Writes an upgrade request once TLS is up and keeps what comes back."""

    def __init__(self) -> None:
        self.received = b""

    def connectionMade(self) -> None:
        self.transport.write(upgrade_request("/echo", host="localhost"))

    def dataReceived(self, data: bytes) -> None:
        self.received += data


def stack_over_tls(ca: ThrowawayCA, server: Issued, client_cert: Issued | None) -> tuple[RecordingFactory, RawClient]:
    """The daemon's factory behind TLSServerFactory, a TLS client in front, joined by iosim."""
    stack = Stack()
    recording = stack.factories["/echo"]
    tls = ServerTLS(settings(server, client_ca=str(ca.path), client_certs="optional"))
    server_protocol = TLSServerFactory(tls, stack.factory, stack.clock).buildProtocol(
        IPv4Address("TCP", "203.0.113.5", 4000)
    )
    trust = Certificate.loadPEM(ca.path.read_bytes())
    identity = None
    if client_cert is not None:
        identity = PrivateCertificate.loadPEM(client_cert.key_path.read_text() + client_cert.cert_path.read_text())
    options = optionsForClientTLS("localhost", trustRoot=trust, clientCertificate=identity)
    client = RawClient()
    client_protocol = TLSMemoryBIOFactory(
        options, True, Factory.forProtocol(lambda: client), stack.clock
    ).buildProtocol(None)
    server_transport, client_transport = iosim.makeFakeServer(server_protocol), iosim.makeFakeClient(client_protocol)
    pump = iosim.connect(server_protocol, server_transport, client_protocol, client_transport, clock=stack.clock)
    pump.flush()
    return recording, client


@pytest.mark.filterwarnings("ignore:Passing pyOpenSSL:DeprecationWarning")  # Twisted's client side, not ours
def test_handler_sees_the_client_certificate_subject(ca, server):
    """Over TLS with a client certificate, the handler's transport reports its subject (peerCertificateSubject)."""
    recording, client = stack_over_tls(ca, server, ca.issue("alice", client=True))
    assert client.received.startswith(b"HTTP/1.1 101 ")
    (handler,) = recording.handlers
    assert handler.transport.peerCertificateSubject == "CN=alice,O=wsdaemon tests"


def test_handler_sees_no_subject_without_a_client_certificate(ca, server):
    """Over TLS without a client certificate, peerCertificateSubject is None."""
    recording, client = stack_over_tls(ca, server, None)
    assert client.received.startswith(b"HTTP/1.1 101 ")
    (handler,) = recording.handlers
    assert handler.transport.peerCertificateSubject is None


def test_plain_tcp_has_no_peer_certificate():
    """Without TLS, getPeerCertificate() and peerCertificateSubject are None."""
    stack = Stack()
    stack.upgraded("/echo")
    (handler,) = stack.factories["/echo"].handlers
    assert handler.transport.getPeerCertificate() is None
    assert handler.transport.peerCertificateSubject is None
