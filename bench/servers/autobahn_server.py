"""Autobahn on Twisted: the classic WebSocket echo (autobahn.twisted.websocket).

Options set through Autobahn's own configuration only (nothing patched):
tcpNoDelay=True (Autobahn's default, set explicitly), no size limits. On the
first connection it reports whether TCP_NODELAY is really on (getsockopt),
since DESIGN.md §5 notes that Autobahn's option can fail silently.

    python bench/servers/autobahn_server.py --port 9001
"""

from __future__ import annotations

import argparse
import socket
import sys

from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from twisted.internet import reactor


class Echo(WebSocketServerProtocol):
    reported = False

    def onOpen(self) -> None:
        if not Echo.reported:
            Echo.reported = True
            try:
                handle = self.transport.getHandle()
                nodelay = handle.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
                print(f"autobahn: TCP_NODELAY on accepted socket = {nodelay}", file=sys.stderr, flush=True)
            except Exception as error:  # report only
                print(f"autobahn: cannot read TCP_NODELAY: {error!r}", file=sys.stderr, flush=True)

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        self.sendMessage(payload, isBinary)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args()
    factory = WebSocketServerFactory(f"ws://{args.host}:{args.port}")
    factory.protocol = Echo
    factory.setProtocolOptions(
        tcpNoDelay=True,
        maxFramePayloadSize=0,
        maxMessagePayloadSize=0,
        autoFragmentSize=0,
    )
    reactor.listenTCP(args.port, factory, backlog=1024, interface=args.host)
    print(f"autobahn echo listening on {args.host}:{args.port}", flush=True)
    reactor.run()


if __name__ == "__main__":
    main()
