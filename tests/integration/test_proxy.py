"""The real client address behind proxies, over real sockets: PROXY v1/v2 listeners and forwarding headers.

The "proxy" is this test itself: it writes the PROXY header (or X-Forwarded-For) a proxy
would, from 127.0.0.1, and the daemon must count, limit and log the client it names.
"""

from __future__ import annotations

import ipaddress
import struct
from typing import Any

import pytest

from tests.integration.support import LOOPBACK, close_handshake, free_port, status_of, upgrade, wait_for_output

PER_IP = 2
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"


def proxy_v1(client: str, port: int) -> bytes:
    """A PROXY protocol v1 line for a TCP4 client connecting to 127.0.0.1:80."""
    return f"PROXY TCP4 {client} 127.0.0.1 {port} 80\r\n".encode("ascii")


def proxy_v2(client: str, port: int) -> bytes:
    """A PROXY protocol v2 header (PROXY command, TCP over IPv4) for ``client``:``port`` -> 127.0.0.1:80."""
    addresses = ipaddress.IPv4Address(client).packed + ipaddress.IPv4Address("127.0.0.1").packed
    body = addresses + struct.pack("!HH", port, 80)
    return V2_SIGNATURE + bytes([0x21, 0x11]) + struct.pack("!H", len(body)) + body


@pytest.fixture
def proxied(daemon_factory: Any) -> Any:
    """A daemon with a direct listener and a PROXY-protocol one, max_connections_per_ip = 2."""
    direct, behind = free_port(), free_port()
    config = (
        f'[[listeners]]\nendpoint = "tcp:{direct}:interface={LOOPBACK}"\n'
        f'[[listeners]]\nendpoint = "haproxy:tcp:{behind}:interface={LOOPBACK}"\n'
        f"[limits]\nmax_connections_per_ip = {PER_IP}\n"
    )
    daemon = daemon_factory(config, port=direct, listen=False)
    daemon.proxy_port = behind
    return daemon


def test_closed_proxied_connections_leave_no_count_under_the_proxy(proxied):
    """After more than max_connections_per_ip proxied connections came and went, a direct client from the proxy's address gets 101.

    The regression of the haproxy: counting bug: counted under the proxy, uncounted under the
    client, the proxy's count only grew, and every direct client from its address got 503.
    """
    for number in range(PER_IP * 3):
        sock = upgrade(proxied.proxy_port, proxy_v1(f"198.51.100.{number + 1}", 40000 + number))
        assert status_of(sock) == 101
        close_handshake(sock)
    direct = upgrade(proxied.port)
    assert status_of(direct) == 101
    close_handshake(direct)


@pytest.mark.parametrize("header", [proxy_v1, proxy_v2], ids=["v1", "v2"])
def test_the_per_ip_limit_counts_the_client_the_proxy_header_names(proxied, header):
    """Through one proxy address, a client at its limit gets 503 while another client still gets 101; the log names the client."""
    held = [upgrade(proxied.proxy_port, header("198.51.100.7", 40000 + n)) for n in range(PER_IP)]
    assert [status_of(sock) for sock in held] == [101] * PER_IP
    over = upgrade(proxied.proxy_port, header("198.51.100.7", 41000))
    other = upgrade(proxied.proxy_port, header("198.51.100.8", 41001))
    assert (status_of(over), status_of(other)) == (503, 101)
    for sock in [*held, other]:
        close_handshake(sock)
    over.close()
    wait_for_output(proxied, "peer=198.51.100.8:41001")


@pytest.fixture
def behind_nginx(daemon_factory: Any) -> Any:
    """A daemon that trusts 127.0.0.1 as its reverse proxy, max_connections_per_ip = 2."""
    return daemon_factory(f'[proxy]\ntrusted_networks = ["127.0.0.1"]\n[limits]\nmax_connections_per_ip = {PER_IP}\n')


def test_x_forwarded_for_from_a_trusted_proxy_decides_the_limit_and_the_log(behind_nginx):
    """From the trusted 127.0.0.1, X-Forwarded-For names the client each limit counts and each log line shows."""
    forwarded = (("X-Forwarded-For", "198.51.100.7"),)
    held = [upgrade(behind_nginx.port, headers=forwarded) for _ in range(PER_IP)]
    assert [status_of(sock) for sock in held] == [101] * PER_IP
    over = upgrade(behind_nginx.port, headers=forwarded)
    other = upgrade(behind_nginx.port, headers=(("X-Forwarded-For", "6.6.6.6, 198.51.100.8"),))
    assert (status_of(over), status_of(other)) == (503, 101)
    for sock in [*held, other]:
        close_handshake(sock)
    over.close()
    wait_for_output(behind_nginx, "peer=198.51.100.8 ")


def test_x_forwarded_for_from_an_untrusted_peer_is_ignored(behind_nginx):
    """From 127.0.0.2 (not trusted) X-Forwarded-For is ignored: its connections count under 127.0.0.2 itself."""
    held = [
        upgrade(behind_nginx.port, headers=(("X-Forwarded-For", f"198.51.100.{n}"),), source="127.0.0.2")
        for n in range(PER_IP)
    ]
    assert [status_of(sock) for sock in held] == [101] * PER_IP
    over = upgrade(behind_nginx.port, headers=(("X-Forwarded-For", "198.51.100.99"),), source="127.0.0.2")
    assert status_of(over) == 503
    for sock in held:
        close_handshake(sock)
    over.close()
    wait_for_output(behind_nginx, "peer=127.0.0.2:")
