"""wss:// for real: SNI, mutual TLS, certificate reload on SIGHUP and the command-line client's checks.

A throwaway CA and certificates are made at test time; every connection goes to 127.0.0.1.
"""

from __future__ import annotations

import shutil
import signal
import socket
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from websockets.sync.client import ClientConnection, connect

from tests.certs import Issued, ThrowawayCA
from tests.integration.support import free_port, wait_for_output

LOOPBACK = "127.0.0.1"
REPO_ROOT = Path(__file__).resolve().parents[2]


class Pki:
    """The CA and the certificates one daemon serves."""

    def __init__(self, directory: Path) -> None:
        self.ca = ThrowawayCA(directory)
        self.default = self.ca.issue("localhost", ("localhost",), stem="default")
        self.exact = self.ca.issue("ws.example.test", ("ws.example.test",), stem="exact")
        self.wildcard = self.ca.issue("*.apps.example.test", ("*.apps.example.test",), stem="wildcard")
        self.alice = self.ca.issue("alice", client=True, stem="alice")


def tls_config(pki: Pki, http_port: int, tls_port: int, mtls_port: int) -> str:
    """A plain listener (health checks), a TLS listener with two SNI entries, and an mTLS listener."""
    default = f'certificate = "{pki.default.cert_path}"\nprivate_key = "{pki.default.key_path}"\n'
    return (
        f'[[listeners]]\nendpoint = "tcp:{http_port}:interface={LOOPBACK}"\n'
        f'[[listeners]]\nendpoint = "tcp:{tls_port}:interface={LOOPBACK}"\ntls = true\n{default}'
        f'[[listeners.sni]]\nserver_name = "ws.example.test"\ncertificate = "{pki.exact.cert_path}"\nprivate_key = "{pki.exact.key_path}"\n'
        f'[[listeners.sni]]\nserver_name = "*.apps.example.test"\ncertificate = "{pki.wildcard.cert_path}"\nprivate_key = "{pki.wildcard.key_path}"\n'
        f'[[listeners]]\nendpoint = "tcp:{mtls_port}:interface={LOOPBACK}"\ntls = true\n{default}'
        f'client_ca = "{pki.ca.path}"\nclient_certs = "required"\n'
    )


class Served:
    """A running TLS daemon: its ports and certificates."""

    def __init__(self, daemon, pki: Pki, tls_port: int, mtls_port: int) -> None:
        self.daemon = daemon
        self.pki = pki
        self.tls_port = tls_port
        self.mtls_port = mtls_port

    def context(self, client: Issued | None = None) -> ssl.SSLContext:
        """A client context trusting our CA (host names are checked by the callers that want it)."""
        context = ssl.create_default_context(cafile=str(self.pki.ca.path))
        if client is not None:
            context.load_cert_chain(str(client.cert_path), str(client.key_path))
        return context

    def handshake(self, server_name: str, port: int | None = None, client: Issued | None = None) -> ssl.SSLSocket:
        """A TLS connection to 127.0.0.1 asking for ``server_name`` (checked against the certificate)."""
        raw = socket.create_connection((LOOPBACK, port or self.tls_port), timeout=10)
        context = self.context(client)
        context.set_alpn_protocols(["h2", "http/1.1"])
        return context.wrap_socket(raw, server_hostname=server_name)

    def websocket(self, port: int | None = None, client: Issued | None = None) -> ClientConnection:
        """A wss:// connection to /echo on 127.0.0.1 for the name localhost."""
        raw = socket.create_connection((LOOPBACK, port or self.tls_port), timeout=10)
        return connect(
            f"wss://localhost:{port or self.tls_port}/echo",
            sock=raw,
            ssl=self.context(client),
            server_hostname="localhost",
            open_timeout=10,
        )


def serial_of(connection: ssl.SSLSocket) -> int:
    der = connection.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """One daemon with plain, TLS+SNI and mTLS listeners, shared by the read-only tests here."""
    from tests.integration.conftest import running_daemon

    workdir = tmp_path_factory.mktemp("tls")
    pki = Pki(workdir / "pki")
    http_port, tls_port, mtls_port = free_port(), free_port(), free_port()
    with running_daemon(
        workdir, tls_config(pki, http_port, tls_port, mtls_port), port=http_port, listen=False
    ) as daemon:
        yield Served(daemon, pki, tls_port, mtls_port)


# --- certificates per server name -------------------------------------------------------------


def test_each_sni_name_gets_its_certificate(served):
    """Exact and wildcard SNI names get their own certificates; the host names verify."""
    assert serial_of(served.handshake("ws.example.test")) == served.pki.exact.serial
    assert serial_of(served.handshake("chat.apps.example.test")) == served.pki.wildcard.serial
    assert serial_of(served.handshake("localhost")) == served.pki.default.serial


def test_unknown_name_gets_the_default_certificate(served):
    """A name with no SNI entry gets the default certificate, which a checking client then refuses."""
    with pytest.raises(ssl.SSLCertVerificationError):
        served.handshake("other.example.test")


def test_alpn_is_http_1_1_and_tls_at_least_1_2(served):
    """The server picks ALPN http/1.1 over h2, and speaks TLS 1.2 or newer."""
    connection = served.handshake("localhost")
    assert connection.selected_alpn_protocol() == "http/1.1"
    assert connection.version() in ("TLSv1.2", "TLSv1.3")


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1_1 is deprecated:DeprecationWarning")
def test_tls_1_1_client_is_refused(served):
    """A client limited to TLS 1.1 cannot connect."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.minimum_version = context.maximum_version = ssl.TLSVersion.TLSv1_1
    context.set_ciphers("DEFAULT:@SECLEVEL=0")
    with pytest.raises((ssl.SSLError, ConnectionResetError)):
        context.wrap_socket(socket.create_connection((LOOPBACK, served.tls_port), timeout=10))


def test_websocket_echo_over_tls(served):
    """A wss:// client gets its messages echoed on the TLS listener."""
    with served.websocket() as ws:
        ws.send("over TLS")
        assert ws.recv(timeout=10) == "over TLS"


# --- mutual TLS ----------------------------------------------------------------------------------


def test_mtls_refuses_a_client_without_certificate(served):
    """client_certs = "required": a client with no certificate gets a TLS alert or EOF, never an HTTP answer."""
    answer = b""
    try:
        # TLS 1.3 finishes the client's side of the handshake first; the refusal comes on the first read.
        connection = served.handshake("localhost", port=served.mtls_port)
        connection.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        answer = connection.recv(4096)
    except (ssl.SSLError, ConnectionError):
        pass
    assert answer == b""


def test_mtls_accepts_a_client_certificate_signed_by_client_ca(served):
    """A client certificate signed by client_ca gets through and its WebSocket works."""
    with served.websocket(port=served.mtls_port, client=served.pki.alice) as ws:
        ws.send("I am alice")
        assert ws.recv(timeout=10) == "I am alice"


# --- the command-line client ---------------------------------------------------------------------


def run_client(url: str, *args: str, text: str = "hello\n") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "wsdaemon.client", url, *args],
        input=text,
        capture_output=True,
        text=True,
        timeout=30,
        cwd=REPO_ROOT,
        check=False,
    )


def test_cli_client_speaks_wss_with_cafile(served):
    """python -m wsdaemon.client wss://localhost:PORT/echo --cafile CA echoes and exits 0."""
    result = run_client(f"wss://localhost:{served.tls_port}/echo", "--cafile", str(served.pki.ca.path))
    assert (result.returncode, result.stdout) == (0, "hello\n"), result.stderr


def test_cli_client_refuses_a_wrong_host(served):
    """Connecting by IP to a certificate for localhost fails clearly (exit 1), never silently."""
    result = run_client(f"wss://{LOOPBACK}:{served.tls_port}/echo", "--cafile", str(served.pki.ca.path))
    assert result.returncode == 1
    assert "not valid for '127.0.0.1'" in result.stderr and result.stdout == ""


def test_cli_client_refuses_an_untrusted_certificate(served):
    """Without --cafile our private CA is not trusted: exit 1 with "not trusted"."""
    result = run_client(f"wss://localhost:{served.tls_port}/echo")
    assert result.returncode == 1
    assert "not trusted" in result.stderr and result.stdout == ""


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_the_readme_test_certificate_serves_localhost_and_127_0_0_1(tmp_path, daemon_factory):
    """The README's openssl one-liner makes a certificate the client accepts by name and by address."""
    from tests.test_check import readme_certificate_recipe

    subprocess.run(readme_certificate_recipe(), cwd=tmp_path, check=True, capture_output=True, timeout=60)
    http_port, tls_port = free_port(), free_port()
    daemon_factory(
        f'[[listeners]]\nendpoint = "tcp:{http_port}:interface={LOOPBACK}"\n'
        f'[[listeners]]\nendpoint = "tcp:{tls_port}:interface={LOOPBACK}"\ntls = true\n'
        f'certificate = "{tmp_path / "cert.pem"}"\nprivate_key = "{tmp_path / "key.pem"}"\n',
        port=http_port,
        listen=False,
    )
    for host in ("localhost", LOOPBACK):
        result = run_client(f"wss://{host}:{tls_port}/echo", "--cafile", str(tmp_path / "cert.pem"))
        assert (result.returncode, result.stdout) == (0, "hello\n"), result.stderr


# --- reload on SIGHUP ----------------------------------------------------------------------------


def test_sighup_serves_renewed_certificate_and_keeps_old_connections(tmp_path, daemon_factory):
    """After replacing the files and SIGHUP, new connections get the new certificate; an old one still works."""
    pki = Pki(tmp_path / "pki")
    http_port, tls_port, mtls_port = free_port(), free_port(), free_port()
    daemon = daemon_factory(tls_config(pki, http_port, tls_port, mtls_port), port=http_port, listen=False)
    served = Served(daemon, pki, tls_port, mtls_port)
    with served.websocket() as old:
        assert serial_of(old.socket) == pki.default.serial
        renewed = pki.ca.issue("localhost", ("localhost",), stem="renewed")
        pki.default.cert_path.write_bytes(renewed.cert_path.read_bytes())
        pki.default.key_path.write_bytes(renewed.key_path.read_bytes())
        daemon.process.send_signal(signal.SIGHUP)
        wait_for_output(daemon, "reload done")
        assert serial_of(served.handshake("localhost")) == renewed.serial
        old.send("still open")
        assert old.recv(timeout=10) == "still open"


def test_sighup_with_a_broken_certificate_keeps_the_old_one(tmp_path, daemon_factory):
    """A broken certificate on SIGHUP is refused with a clear log line, and the old one stays in use."""
    pki = Pki(tmp_path / "pki")
    http_port, tls_port, mtls_port = free_port(), free_port(), free_port()
    daemon = daemon_factory(tls_config(pki, http_port, tls_port, mtls_port), port=http_port, listen=False)
    pki.default.cert_path.write_text("-----BEGIN CERTIFICATE-----\nhalf a file\n")
    daemon.process.send_signal(signal.SIGHUP)
    wait_for_output(daemon, "reload done")
    assert "still serving the old one" in daemon.output()
    assert f"tcp:{tls_port}:interface={LOOPBACK}" in daemon.output()
    assert serial_of(Served(daemon, pki, tls_port, mtls_port).handshake("localhost")) == pki.default.serial
