"""websockets (asyncio implementation) echo at /echo and fan-out elsewhere, optionally on uvloop.

Any other path is one fan-out group: each message a member sends goes to every
member, the sender too (as wsdaemon's ``broadcast`` handler does by default),
with ``websockets.broadcast()``, the library's own fan-out.

asyncio and uvloop set TCP_NODELAY on TCP transports themselves. Size limits
are lifted (max_size=None) so a 1 MiB message is accepted; compression is off
(the load generator does not offer it anyway).

    python bench/servers/websockets_server.py --port 9003 [--uvloop] [--tls CERT KEY]
"""

from __future__ import annotations

import argparse
import asyncio
import ssl

from websockets.asyncio.server import ServerConnection, broadcast, serve

#: The members of the fan-out group.
MEMBERS: set[ServerConnection] = set()


async def echo(websocket: ServerConnection) -> None:
    if websocket.request is not None and websocket.request.path != "/echo":
        await fan_out(websocket)
        return
    async for message in websocket:
        await websocket.send(message)


async def fan_out(websocket: ServerConnection) -> None:
    MEMBERS.add(websocket)
    try:
        async for message in websocket:
            broadcast(MEMBERS, message)
    finally:
        MEMBERS.discard(websocket)


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
