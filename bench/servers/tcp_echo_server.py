"""Plain Twisted TCP echo: the ceiling every WebSocket server is measured against.

No framing at all: each read is written straight back. TCP_NODELAY is set on
accepted connections, as wsdaemon does.

    python bench/servers/tcp_echo_server.py --port 9000
"""

from __future__ import annotations

import argparse

from tls_listen import add_tls_argument, listen  # bench/servers/, beside this script
from twisted.internet import reactor
from twisted.internet.protocol import Factory, Protocol


class Echo(Protocol):
    def connectionMade(self) -> None:
        self.transport.setTcpNoDelay(True)

    def dataReceived(self, data: bytes) -> None:
        self.transport.write(data)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    add_tls_argument(parser)
    args = parser.parse_args()
    listen(reactor, args.port, Factory.forProtocol(Echo), args.host, args.tls)
    print(f"tcp echo listening on {args.host}:{args.port}", flush=True)
    reactor.run()


if __name__ == "__main__":
    main()
