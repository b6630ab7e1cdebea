"""websockets (asyncio implementation) echo, optionally on uvloop.

asyncio and uvloop set TCP_NODELAY on TCP transports themselves. Size limits
are lifted (max_size=None) so a 1 MiB message is accepted; compression is off
(the load generator does not offer it anyway).

    python bench/servers/websockets_server.py --port 9003 [--uvloop] [--tls CERT KEY]
"""

from __future__ import annotations

import argparse
import asyncio
import ssl

from websockets.asyncio.server import ServerConnection, serve


async def echo(websocket: ServerConnection) -> None:
    async for message in websocket:
        await websocket.send(message)


async def run(host: str, port: int, flavour: str, tls: list[str] | None) -> None:
    context = None
    if tls:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(tls[0], tls[1])
    async with serve(echo, host, port, max_size=None, compression=None, backlog=1024, ssl=context):
        print(f"websockets ({flavour}) echo listening on {host}:{port}", flush=True)
        await asyncio.get_running_loop().create_future()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--uvloop", action="store_true", help="run on uvloop instead of the asyncio loop")
    parser.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"), help="listen with TLS (PEM certificate and key)")
    args = parser.parse_args()
    if args.uvloop:
        import uvloop

        uvloop.run(run(args.host, args.port, "uvloop", args.tls))
    else:
        asyncio.run(run(args.host, args.port, "asyncio", args.tls))


if __name__ == "__main__":
    main()
