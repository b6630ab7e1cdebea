"""Autobahn on Twisted: the classic WebSocket echo (autobahn.twisted.websocket), and fan-out.

At /echo it echoes. Any other path is one fan-out group: each message goes to
every member, the sender too, framed once with Autobahn's prepared messages
(``prepareMessage`` / ``sendPreparedMessage``), its own fast path for broadcast.

Options set through Autobahn's own configuration only (nothing patched): no
size limits, and tcpNoDelay=True. On the first connection it reports whether
TCP_NODELAY is really on (getsockopt).

Autobahn's factory option alone does not work: its connectionMade calls
setTcpNoDelay(self.tcpNoDelay) before _connectionMade copies the factory's
options onto the protocol, the AttributeError is swallowed, and Nagle stays on
(getsockopt gives 0). Autobahn also takes options per protocol class ("only
copy if not already set on protocol instance"), so the option is set there as
well, which works. --factory-nodelay-only leaves it on the factory alone, to
show the difference.

    python bench/servers/autobahn_server.py --port 9001 [--factory-nodelay-only]
"""

from __future__ import annotations

import argparse
import socket
import sys

from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from tls_listen import add_tls_argument, listen  # bench/servers/, beside this script
from twisted.internet import reactor


class Echo(WebSocketServerProtocol):
    reported = False
    tcpNoDelay = True  # Autobahn's per-protocol configuration (see the module docstring)
    fan_out = False  # set in onConnect: any path but /echo is the fan-out group

    def onOpen(self) -> None:
        if not Echo.reported:
            Echo.reported = True
            try:
                handle = self.transport.getHandle()
                nodelay = handle.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
                print(f"autobahn: TCP_NODELAY on accepted socket = {nodelay}", file=sys.stderr, flush=True)
            except (OSError, AttributeError) as error:  # report only
                print(f"autobahn: cannot read TCP_NODELAY: {error!r}", file=sys.stderr, flush=True)
        if self.fan_out:
            MEMBERS.add(self)

    def onConnect(self, request):  # type: ignore[no-untyped-def]
        self.fan_out = request.path != "/echo"
        return None

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        if not self.fan_out:
            self.sendMessage(payload, isBinary)
            return
        prepared = self.factory.prepareMessage(payload, isBinary)
        for member in MEMBERS:
            member.sendPreparedMessage(prepared)

    def onClose(self, wasClean: bool, code: int, reason: str) -> None:
        MEMBERS.discard(self)


#: The members of the fan-out group.
MEMBERS: set[Echo] = set()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    add_tls_argument(parser)
    parser.add_argument(
        "--factory-nodelay-only", action="store_true", help="set tcpNoDelay on the factory only (Nagle stays on)"
    )
    args = parser.parse_args()
    if args.factory_nodelay_only:
        del Echo.tcpNoDelay
    factory = WebSocketServerFactory(f"ws://{args.host}:{args.port}")
    factory.protocol = Echo
    factory.setProtocolOptions(
        tcpNoDelay=True,
        maxFramePayloadSize=0,
        maxMessagePayloadSize=0,
        autoFragmentSize=0,
    )
    listen(reactor, args.port, factory, args.host, args.tls)
    print(f"autobahn echo listening on {args.host}:{args.port}", flush=True)
    reactor.run()


if __name__ == "__main__":
    main()
