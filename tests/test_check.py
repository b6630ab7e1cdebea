"""``--check-config`` (wsdaemon.check): validate like a start, print the effective settings, never listen."""

from __future__ import annotations

import io
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from twisted.internet.testing import MemoryReactorClock

from tests.certs import ThrowawayCA
from wsdaemon.check import check_config, write_report
from wsdaemon.plugins import discover_handlers

REPO_ROOT = Path(__file__).resolve().parents[1]


def run(tmp_path: Path, text: str | None, listen: tuple[str, ...] = ()) -> tuple[int, str, str, MemoryReactorClock]:
    """check_config on ``text`` (None: the defaults); (status, stdout, stderr, reactor)."""
    path = None
    if text is not None:
        path = tmp_path / "wsdaemon.toml"
        path.write_text(text)
    out, err, reactor = io.StringIO(), io.StringIO(), MemoryReactorClock()
    status = check_config(str(path) if path else None, listen, discover_handlers(), reactor, out, err)
    return status, out.getvalue(), err.getvalue(), reactor


def tls_listener(tmp_path: Path, days: float = 90) -> str:
    issued = ThrowawayCA(tmp_path / "pki").issue("localhost", ("localhost",), days=days)
    return f'[[listeners]]\nendpoint = "tcp:8443"\ntls = true\ncertificate = "{issued.cert_path}"\nprivate_key = "{issued.key_path}"\n'


def test_defaults_are_ok_and_printed(tmp_path):
    """The built-in defaults check out: exit 0, the listener, the /echo endpoint and every limit printed."""
    status, out, err, _ = run(tmp_path, None)
    assert status == 0 and err == ""
    assert "tcp:8080:interface=127.0.0.1  (plain TCP)" in out
    assert "/echo  handler=echo" in out
    assert "  ping_interval_seconds = 20.0" in out and "  drain_timeout_seconds = 10.0" in out
    assert "memory: allocator_cache_bytes = 16777216" in out


def test_nothing_listens(tmp_path):
    """Checking never binds a socket."""
    _, _, _, reactor = run(tmp_path, tls_listener(tmp_path))
    assert reactor.tcpServers == []


def test_tls_listener_shows_its_certificate(tmp_path):
    """A TLS listener is printed with its protocol settings and its certificate's subject and expiry."""
    status, out, _, _ = run(tmp_path, tls_listener(tmp_path))
    assert status == 0
    assert "TLS >= 1.2, default modern ciphers, ALPN http/1.1, client certificates: none" in out
    assert "default certificate:" in out and "CN=localhost,O=wsdaemon tests" in out and "days left" in out


def test_bad_config_exits_1_with_the_loader_report(tmp_path):
    """A config error exits 1 and prints the usual report on stderr, nothing on stdout."""
    status, out, err, _ = run(tmp_path, "[limits]\nmax_message_bytes = 0\n")
    assert status == 1 and out == ""
    assert "limits.max_message_bytes: expected" in err


def test_unreadable_certificate_exits_1_naming_the_key(tmp_path):
    """A certificate file that cannot be read exits 1 naming listeners[0].certificate."""
    text = '[[listeners]]\nendpoint = "tcp:8443"\ntls = true\ncertificate = "/nonexistent.pem"\nprivate_key = "/nonexistent.key"\n'
    status, _, err, _ = run(tmp_path, text)
    assert status == 1
    assert "listeners[0].certificate: expected a readable" in err and "listeners[0].private_key" in err


def test_unknown_handler_option_exits_1(tmp_path):
    """Handler options are checked by the handler plugin: an unknown one exits 1."""
    text = '[[endpoints]]\npath = "/echo"\nhandler = "echo"\n[endpoints.options]\nloud = true\n'
    status, _, err, _ = run(tmp_path, text)
    assert status == 1 and "endpoints[0].options.loud" in err


def test_bad_endpoint_string_exits_1(tmp_path):
    """An endpoint string Twisted cannot parse exits 1."""
    status, _, err, _ = run(tmp_path, '[[listeners]]\nendpoint = "tcp:notaport"\n')
    assert status == 1 and "listeners[0].endpoint" in err


def test_systemd_socket_not_passed_is_noted_not_failed(tmp_path, monkeypatch):
    """A systemd: listener whose socket is not passed (ExecStartPre) is reported as unchecked, not as an error."""
    monkeypatch.delenv("LISTEN_FDS", raising=False)
    status, out, _, _ = run(tmp_path, '[[listeners]]\nendpoint = "systemd:domain=INET:name=wsdaemon-https"\n')
    assert status == 0
    assert "socket passed by systemd at start" in out


def test_bad_systemd_endpoint_syntax_still_fails(tmp_path):
    """A systemd: endpoint naming both index and name is still an error."""
    status, _, err, _ = run(tmp_path, '[[listeners]]\nendpoint = "systemd:domain=INET:index=0:name=x"\n')
    assert status == 1 and "listeners[0].endpoint" in err


def test_expiring_certificate_is_a_warning_not_a_failure(tmp_path):
    """A certificate expiring within 14 days is printed as a warning on stderr; the check still passes."""
    status, _, err, _ = run(tmp_path, tls_listener(tmp_path, days=2))
    assert status == 0
    assert "wsdaemon: warning: tcp:8443: certificate" in err and "expires on" in err


AUTH = '[[endpoints]]\npath = "/chat"\nhandler = "echo"\n[endpoints.auth]\ntype = "jwt"\nalgorithms = ["HS256"]\nsecret_file = "{}"\n'


def test_auth_is_printed_and_its_key_file_read(tmp_path):
    """--check-config prints an endpoint's authenticator, and a bad key file fails the check naming it."""
    secret = tmp_path / "secret"
    secret.write_bytes(b"k" * 32)
    status, out, _, _ = run(tmp_path, AUTH.format(secret) + "close_on_expiry = true\n")
    assert status == 0
    assert "    auth: jwt {'algorithms': ['HS256'], 'secret_file': '" in out
    assert "closes with 1008 when it expires" in out
    secret.write_bytes(b"short")
    status, _, err, _ = run(tmp_path, AUTH.format(secret))
    assert status == 1
    assert (
        f"endpoints[0].auth.secret_file: expected a file holding a secret of at least 32 bytes, got '{secret}'" in err
    )


def test_the_worker_count_is_printed(tmp_path):
    """--check-config says how many processes a start would run: one, or N workers under a main process."""
    _, one, _, _ = run(tmp_path, None)
    assert "process: workers = 1: one process serves every listener" in one
    status, two, _, _ = run(tmp_path, "[process]\nworkers = 2\n")
    assert status == 0
    assert "process: workers = 2: a main process holds the listeners, 2 worker processes serve them" in two


def test_auto_workers_print_the_count_they_give(tmp_path, monkeypatch):
    """workers = "auto" prints the number of workers it means on this host."""
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0, 1, 2})
    _, out, _, _ = run(tmp_path, '[process]\nworkers = "auto"\n')
    assert 'process: workers = "auto": 3 (one per CPU this process may run on)' in out


def test_broadcast_with_workers_passes_the_check_and_says_where_channels_live(tmp_path):
    """broadcast with workers = 2 is fine (the main process relays); the check prints where channels live."""
    status, out, _, _ = run(tmp_path, '[process]\nworkers = 2\n[[endpoints]]\npath = "/c"\nhandler = "broadcast"\n')
    assert status == 0 and "broker: the main process relays channels between its workers" in out


def test_a_reader_that_stops_early_is_no_error():
    """write_report into a pipe whose reader has gone (`--check-config | head`) raises nothing, and later writes are absorbed."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    with open(write_end, "w", encoding="utf-8") as out:
        write_report("wsdaemon: configuration OK\n" * 10, out)
        print("more", file=out)
        out.flush()  # what the interpreter does at exit: no second BrokenPipeError


def test_check_config_piped_into_a_closed_reader_exits_quietly():
    """`twist wsdaemon --check-config | head -c0`: exit 0 with nothing on stderr (no BrokenPipeError traceback)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "twisted", "wsdaemon", "--check-config"],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    process.stdout.close()  # the reader is gone before the daemon writes its report
    _, err = process.communicate(timeout=60)
    assert (process.returncode, err.decode()) == (0, "")


def certificate_listener(tmp_path: Path, dns_names: tuple[str, ...], ip_addresses: tuple[str, ...] = ()) -> str:
    """A TLS listener whose certificate has exactly these subjectAltName entries."""
    issued = ThrowawayCA(tmp_path / "pki").issue("server", dns_names, ip_addresses=ip_addresses)
    return f'[[listeners]]\nendpoint = "tcp:8443"\ntls = true\ncertificate = "{issued.cert_path}"\nprivate_key = "{issued.key_path}"\n'


def test_a_certificate_without_dns_names_is_warned_about(tmp_path):
    """A certificate with no subjectAltName DNS names passes, with a warning that clients will reject it."""
    status, out, err, _ = run(tmp_path, certificate_listener(tmp_path, ()))
    assert status == 0 and "names (no DNS names)" in out
    assert "wsdaemon: warning: tcp:8443: certificate" in err and "no DNS names" in err and "reject" in err


def test_ip_addresses_are_listed_and_an_ip_only_certificate_is_warned_about(tmp_path):
    """IP subjectAltNames are printed; with no DNS name beside them, clients connecting by name will reject it."""
    status, out, err, _ = run(tmp_path, certificate_listener(tmp_path, (), ("127.0.0.1", "::1")))
    assert status == 0 and "IP addresses 127.0.0.1, ::1" in out
    assert "only IP addresses (127.0.0.1, ::1)" in err and "connect by host name" in err


def test_dns_and_ip_names_are_both_printed_without_a_warning(tmp_path):
    """The usual test certificate (DNS:localhost, IP:127.0.0.1) is printed with both kinds of name and no warning."""
    status, out, err, _ = run(tmp_path, certificate_listener(tmp_path, ("localhost",), ("127.0.0.1",)))
    assert status == 0 and err == ""
    assert "names localhost; IP addresses 127.0.0.1; expires" in out


def readme_certificate_recipe() -> list[str]:
    """The README's one-line openssl command for a test certificate, as argv."""
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    (line,) = [line for line in readme.splitlines() if line.startswith("openssl req -x509")]
    return shlex.split(line)


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_the_readme_test_certificate_recipe_checks_out(tmp_path):
    """The README's openssl one-liner gives a certificate --check-config accepts, naming localhost and 127.0.0.1."""
    argv = readme_certificate_recipe()
    assert "subjectAltName=DNS:localhost,IP:127.0.0.1" in argv
    subprocess.run(argv, cwd=tmp_path, check=True, capture_output=True, timeout=60)
    text = f'[[listeners]]\nendpoint = "tcp:8443"\ntls = true\ncertificate = "{tmp_path / "cert.pem"}"\nprivate_key = "{tmp_path / "key.pem"}"\n'
    status, out, err, _ = run(tmp_path, text)
    assert (status, err) == (0, "")
    assert "CN=localhost; names localhost; IP addresses 127.0.0.1; expires" in out


def test_metrics_are_described_and_a_bad_listen_is_an_error(tmp_path):
    """--check-config says where /metrics is served and to whom; an unparsable [metrics] listen fails the check."""
    assert "metrics: off" in run(tmp_path, None)[1]
    status, out, _, _ = run(tmp_path, '[metrics]\nenabled = true\nlisten = "tcp:9100:interface=127.0.0.1"\n')
    assert status == 0
    assert "metrics: GET /metrics on tcp:9100:interface=127.0.0.1 only, to 127.0.0.0/8, ::1/128" in out
    status, _, err, _ = run(tmp_path, '[metrics]\nenabled = true\nlisten = "carrier-pigeon:9100"\n')
    assert status != 0 and "metrics.listen" in err
