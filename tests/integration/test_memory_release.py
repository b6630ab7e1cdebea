"""A spike of wss connections that comes and goes: the daemon hands the memory they left back to the kernel.

Real TLS connections from the ``websockets`` client to a daemon process on 127.0.0.1; the
daemon's resident memory is read from /proc.
"""

from __future__ import annotations

import asyncio
import ssl

from websockets.asyncio.client import connect

from tests.certs import ThrowawayCA
from tests.integration.support import free_port, rss_bytes, wait_for_output

LOOPBACK = "127.0.0.1"
SPIKE = 800
RELEASE_AFTER = 500
MIB = 1024 * 1024


async def open_many(port: int, context: ssl.SSLContext, count: int) -> list:
    """``count`` wss connections to /echo, opened 50 at a time, each having echoed one message."""
    gate = asyncio.Semaphore(50)

    async def one():
        async with gate:
            connection = await connect(
                f"wss://localhost:{port}/echo", ssl=context, server_hostname="localhost", open_timeout=30
            )
            await connection.send("hello")
            assert await connection.recv() == "hello"
            return connection

    return list(await asyncio.gather(*(one() for _ in range(count))))


async def close_all(connections: list) -> None:
    await asyncio.gather(*(connection.close() for connection in connections))


def test_memory_left_by_closed_connections_goes_back_to_the_kernel(tmp_path):
    """Once 500 fewer connections are open than at the peak, resident memory falls back toward the start.

    Seen here: 56 MiB at the start, 89 with 800 connections, 93 after they closed, 77 after the release.
    """
    from tests.integration.conftest import running_daemon

    ca = ThrowawayCA(tmp_path / "pki")
    served = ca.issue("localhost", ("localhost",), stem="server")
    http_port, tls_port = free_port(), free_port()
    config = (
        f"[memory]\nrelease_after_closed_connections = {RELEASE_AFTER}\n"
        # one client address opens them all
        "[limits]\nmax_connections_per_ip = 5000\nconnection_rate_per_ip = 100000.0\nconnection_burst_per_ip = 5000\n"
        f'[[listeners]]\nendpoint = "tcp:{http_port}:interface={LOOPBACK}"\n'
        f'[[listeners]]\nendpoint = "tcp:{tls_port}:interface={LOOPBACK}"\ntls = true\n'
        f'certificate = "{served.cert_path}"\nprivate_key = "{served.key_path}"\n'
    )
    context = ssl.create_default_context(cafile=str(ca.path))
    with running_daemon(tmp_path, config, port=http_port, listen=False) as daemon:
        pid = daemon.process.pid
        start = rss_bytes(pid)

        async def spike() -> tuple[int, int]:
            connections = await open_many(tls_port, context, SPIKE)
            held = rss_bytes(pid)
            await close_all(connections)
            await asyncio.sleep(1)  # the daemon sees every close
            return held, rss_bytes(pid)

        held, closed = asyncio.run(spike())
        assert "freed memory handed back" not in daemon.output()  # at most one check may have run yet
        wait_for_output(daemon, f"{SPIKE} fewer connections than at the peak: freed memory handed back", timeout=25)
        released = rss_bytes(pid)
        grown = held - start
        assert grown > 10 * MIB, f"{SPIKE} wss connections grew the daemon by only {grown / MIB:.1f} MiB"
        # Closing alone gives little back (freed chunks sit between live ones); the release does.
        assert released < closed - grown / 4, (
            f"resident MiB: start {start / MIB:.0f}, held {held / MIB:.0f}, closed {closed / MIB:.0f},"
            f" released {released / MIB:.0f}"
        )
