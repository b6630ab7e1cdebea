"""twisted.web.websocket (Twisted's own WebSocketResource, on wsproto): echo at /echo, fan-out at /chat/*.

Fan-out: each message a member of /chat/* sends goes to every member, the
sender too, in a plain loop (twisted.web.websocket has no broadcast helper).

twisted.web has no option for TCP_NODELAY, so this script sets it on each
accepted connection the way an application would (a Site subclass): the
library itself is not patched.

    python bench/servers/twisted_ws_server.py --port 9002
"""

from __future__ import annotations

import argparse
import socket
import sys

from tls_listen import add_tls_argument, listen  # bench/servers/, beside this script
from twisted.internet import reactor
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import Request, Site
from twisted.web.websocket import WebSocketResource, WebSocketTransport


class Echo:
    transport: WebSocketTransport

    def negotiationStarted(self, transport: WebSocketTransport) -> None:
        self.transport = transport

    def negotiationFinished(self) -> None:
        pass

    def textMessageReceived(self, message: str) -> None:
        self.transport.sendTextMessage(message)

    def bytesMessageReceived(self, data: bytes) -> None:
        self.transport.sendBytesMessage(data)

    def pongReceived(self, payload: bytes) -> None:
        pass

    def connectionLost(self, reason: Failure) -> None:
        pass


class EchoFactory:
    def buildProtocol(self, request: Request) -> Echo:
        return Echo()


class Member(Echo):
    """A member of the fan-out group."""

    def negotiationFinished(self) -> None:
        MEMBERS.add(self)

    def textMessageReceived(self, message: str) -> None:
        for member in MEMBERS:
            member.transport.sendTextMessage(message)

    def bytesMessageReceived(self, data: bytes) -> None:
        for member in MEMBERS:
            member.transport.sendBytesMessage(data)

    def connectionLost(self, reason: Failure) -> None:
        MEMBERS.discard(self)


#: The members of the fan-out group.
MEMBERS: set[Member] = set()


class MemberFactory:
    def buildProtocol(self, request: Request) -> Member:
        return Member()


class Chat(Resource):
    """/chat/<anything>: one fan-out group."""

    def getChild(self, path: bytes, request: Request) -> Resource:
        return WebSocketResource(MemberFactory())


class NoDelaySite(Site):
    """A Site whose connections have Nagle off (twisted.web has no option for it)."""

    reported = False

    def buildProtocol(self, addr):  # type: ignore[no-untyped-def]
        channel = super().buildProtocol(addr)
        make = channel.makeConnection

        def makeConnection(transport):  # type: ignore[no-untyped-def]
            transport.setTcpNoDelay(True)
            if not NoDelaySite.reported:
                NoDelaySite.reported = True
                tcp = getattr(transport, "transport", None) or transport  # under TLS: the TCP transport below
                nodelay = tcp.getHandle().getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
                print(f"twisted.web.websocket: TCP_NODELAY on accepted socket = {nodelay}", file=sys.stderr, flush=True)
            make(transport)

        channel.makeConnection = makeConnection
        return channel


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    add_tls_argument(parser)
    args = parser.parse_args()
    root = Resource()
    root.putChild(b"echo", WebSocketResource(EchoFactory()))
    root.putChild(b"chat", Chat())
    site = NoDelaySite(root)
    site.noisy = False
    listen(reactor, args.port, site, args.host, args.tls)
    print(f"twisted.web.websocket echo listening on {args.host}:{args.port}", flush=True)
    reactor.run()


if __name__ == "__main__":
    main()
