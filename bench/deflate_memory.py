"""Memory per connection with permessage-deflate, after one compressed message each way.

An idle connection holds no zlib state (it is created on the first compressed
message), so the C load generator's idle scenario cannot show this cost. This
script opens N connections with the `websockets` client (which offers
permessage-deflate like a browser does), sends one compressible message on each
and waits for its echo, then reads the server's RSS from /proc:

    python bench/deflate_memory.py [--conns 1000] [--config-table 'server_no_context_takeover = true']

It starts wsdaemon itself on 127.0.0.1 and prints KiB per connection for the
default deflate settings and for no context takeover both ways.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from websockets.asyncio.client import connect

MESSAGE = '{"type": "update", "values": [1, 2, 3, 4, 5], "note": "the same words again"}' * 4

VARIANTS = {
    "defaults (takeover, 12-bit windows)": "",
    "no context takeover both ways": "server_no_context_takeover = true\nclient_no_context_takeover = true\n",
}


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_daemon(workdir: Path, deflate_table: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    config = workdir / "deflate.toml"
    config.write_text(
        "[limits]\nmax_connections = 20000\nmax_connections_per_ip = 20000\nconnection_rate_per_ip = 1000000.0\nconnection_burst_per_ip = 1000000\n"
        '[[endpoints]]\npath = "/echo"\nhandler = "echo"\n[endpoints.deflate]\n' + deflate_table
    )
    command = [
        sys.executable,
        "-m",
        "twisted",
        "wsdaemon",
        "--config",
        str(config),
        "--listen",
        f"tcp:{port}:interface=127.0.0.1",
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return process, port
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("wsdaemon did not start")


async def open_and_exchange(port: int, count: int) -> list[object]:
    clients = []
    for _ in range(count):
        ws = await connect(f"ws://127.0.0.1:{port}/echo", max_size=2**20)
        await ws.send(MESSAGE)
        assert await ws.recv() == MESSAGE
        clients.append(ws)
    return clients


async def measure(port: int, pid: int, count: int) -> float:
    await asyncio.sleep(0.5)
    before = rss_kib(pid)
    clients = await open_and_exchange(port, count)
    await asyncio.sleep(1.0)
    after = rss_kib(pid)
    for ws in clients:
        await ws.close()  # type: ignore[attr-defined]
    return (after - before) / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--conns", type=int, default=1000)
    args = parser.parse_args()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    print(f"| deflate settings | KiB per connection after one message each way ({args.conns} connections) |")
    print("| --- | --- |")
    with tempfile.TemporaryDirectory() as workdir:
        for label, table in VARIANTS.items():
            process, port = start_daemon(Path(workdir), table)
            try:
                per_connection = asyncio.run(measure(port, process.pid, args.conns))
            finally:
                process.terminate()
                process.wait(timeout=30)
            print(f"| {label} | {per_connection:.1f} |")


if __name__ == "__main__":
    main()
