"""Drive the Autobahn client cases served by ``kosoku -m fuzzingserver`` with wsdaemon's own client.

Run as ``python -m tests.integration.autobahn_client ws://127.0.0.1:PORT [PARALLEL]``: it
asks ``/getCaseCount``, runs every case on ``/runCase?case=N&agent=wsdaemon`` (echoing each
message back, as the suite expects), ``PARALLEL`` cases at a time, then calls
``/updateReports`` so the server writes its verdicts and stops. The client is
:func:`wsdaemon.adapter.client.connect` as any user would call it, with permessage-deflate
offered; only the limits are raised to the suite's 16 MiB messages.
"""

from __future__ import annotations

import sys
from typing import Any

from twisted.internet import task
from twisted.internet.defer import Deferred, DeferredSemaphore, gatherResults
from twisted.python.failure import Failure

from wsdaemon.adapter.client import connect
from wsdaemon.core import Limits
from wsdaemon.interfaces import WebSocketTransport

AGENT = "wsdaemon"
LIMITS = Limits(
    max_message_bytes=64 * 2**20,
    max_frame_bytes=64 * 2**20,
    max_fragments=2**22,
    write_buffer_max_bytes=256 * 2**20,
    idle_timeout_seconds=3600.0,
)


class Echo:
    """Sends every message back unchanged; ``done`` fires when the connection ends."""

    def __init__(self) -> None:
        self.done: Deferred[None] = Deferred()
        self.texts: list[str] = []

    def negotiationStarted(self, transport: WebSocketTransport) -> None:
        """Keep the transport to answer through."""
        self.transport = transport

    def negotiationFinished(self) -> None:
        """Nothing to say first: the fuzzing server speaks."""

    def textMessageReceived(self, message: str) -> None:
        """Echo text."""
        self.texts.append(message)
        self.transport.sendTextMessage(message)

    def bytesMessageReceived(self, data: bytes) -> None:
        """Echo binary."""
        self.transport.sendBytesMessage(data)

    def pongReceived(self, payload: bytes) -> None:
        """Pongs need no answer."""

    def connectionLost(self, reason: Failure) -> None:
        """The case is over."""
        self.done.callback(None)


async def run_one(reactor: Any, url: str) -> Echo:
    """One connection, until the server ends it (a failed handshake ends it at once)."""
    handler = Echo()
    try:
        await connect(reactor, url, handler, limits=LIMITS)
    except Exception as error:  # reported; kosoku's verdict says the rest
        print(f"{url}: {error}", file=sys.stderr)
        return handler
    await handler.done
    return handler


async def drive(reactor: Any, base: str, parallel: int) -> None:
    """getCaseCount, every case (``parallel`` at a time), updateReports."""
    counted = await run_one(reactor, f"{base}/getCaseCount")
    count = int(counted.texts[0])
    gate = DeferredSemaphore(parallel)

    def case(number: int) -> Deferred[Echo]:
        return gate.run(lambda: Deferred.fromCoroutine(run_one(reactor, f"{base}/runCase?case={number}&agent={AGENT}")))

    await gatherResults([case(number) for number in range(1, count + 1)])
    await run_one(reactor, f"{base}/updateReports?agent={AGENT}")
    print(f"ran {count} cases", file=sys.stderr)


def main() -> None:
    """Entry point: the fuzzing server's URL, and optionally how many cases at once."""
    base = sys.argv[1].rstrip("/")
    parallel = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    task.react(lambda reactor: Deferred.fromCoroutine(drive(reactor, base, parallel)))


if __name__ == "__main__":
    main()
