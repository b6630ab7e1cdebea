"""A process holding real Redis brokers (wsdaemon.broker.redis) on the real reactor, driven line by line.

Run as ``python -m tests.integration.broker_driver PORT``: each line on stdin is one JSON command,
each line on stdout its JSON answer, in order (a command is answered before the next is read). One
driver process is one daemon as far as Redis can tell; starting a new driver is a daemon restart.
EOF on stdin stops the brokers and the reactor.

Commands (``name`` is a broker of this process, each with one member per subscribed channel):

* ``{"op": "start", "name": "a"}`` - a broker on the Redis at PORT, answered once it is up.
* ``{"op": "subscribe", "name": "a", "channel": "/c"}`` - answered once Redis confirmed it.
* ``{"op": "publish", "items": [["a", "/c", "text"], ...], "limits": {...}}`` - positioned publishes,
  all issued at once in that order; the answer lists each one's ``[epoch, offset]`` or ``{"error": ...}``.
* ``{"op": "received", "name": "a", "channel": "/c", "count": 3}`` - the member's publications
  (``[epoch, offset, text]``), once it has at least ``count``.
* ``{"op": "history", "name": "a", "channel": "/c", "since": 0, "epoch": "...", "limits": {...}}`` -
  ``{"state": [epoch, first, last], "entries": [[offset, text], ...]}`` or ``{"error": ...}``.
* ``{"op": "state", "name": "a", "state": "down"}`` - answered once the broker's link is in that state.
"""

from __future__ import annotations

import json
import sys
from collections import deque
from typing import Any

from twisted.internet import defer, reactor, stdio, task
from twisted.protocols.basic import LineReceiver

from wsdaemon.broker import LinkState
from wsdaemon.broker.linked import LinkedBroker
from wsdaemon.broker.redis import redis_broker
from wsdaemon.config.model import BrokerConfig
from wsdaemon.core.frames import Opcode, SharedMessage
from wsdaemon.hub import Fetch, HubLimits, Publication, RecoveryQuery

#: A command waits at most this long (a hang guard: the test fails with the reason, not a speed check).
PATIENCE_SECONDS = 30.0
POLL_SECONDS = 0.01


class Member:
    """A channel's member that keeps every publication it is given."""

    def __init__(self) -> None:
        self.publications: list[Publication] = []
        self.plain: list[bytes] = []

    def deliver(self, message: SharedMessage) -> None:
        self.plain.append(message.payload)

    def deliver_publication(self, publication: Publication) -> None:
        self.publications.append(publication)


class Driver(LineReceiver):
    """Reads commands, runs them one at a time, writes answers."""

    delimiter = b"\n"
    MAX_LENGTH = 64 * 1024 * 1024

    def __init__(self, port: int) -> None:
        self.settings = BrokerConfig(
            url=f"redis://127.0.0.1:{port}/0",
            scheme="redis",
            port=port,
            connect_timeout_seconds=2.0,
            reconnect_initial_seconds=0.05,
            reconnect_max_seconds=0.2,
        )
        self.brokers: dict[str, LinkedBroker] = {}
        self.members: dict[tuple[str, str], Member] = {}
        self.commands: deque[dict[str, Any]] = deque()
        self.busy = False

    def lineReceived(self, line: bytes) -> None:
        self.commands.append(json.loads(line))
        self._next()

    def _next(self) -> None:
        if self.busy or not self.commands:
            return
        self.busy = True
        command = self.commands.popleft()
        done = defer.ensureDeferred(self.run(command))
        done.addTimeout(PATIENCE_SECONDS, reactor)
        done.addErrback(lambda failure: {"driver_error": repr(failure.value)})
        done.addCallback(self._answer)

    def _answer(self, answer: Any) -> None:
        self.sendLine(json.dumps(answer).encode())
        self.busy = False
        self._next()

    async def run(self, command: dict[str, Any]) -> Any:
        op = command["op"]
        if op == "start":
            broker = self.brokers[command["name"]] = redis_broker(reactor, self.settings, None)
            broker.start()
            await until(lambda: broker.state is LinkState.UP)
            return {"ok": True}
        broker = self.brokers[command.get("name", "")] if "name" in command else None
        if op == "subscribe":
            assert broker is not None
            member = self.members[command["name"], command["channel"]] = Member()
            broker.subscribe(command["channel"], member)
            await until(lambda: command["channel"] in broker.subscribed)
            return {"ok": True}
        if op == "publish":
            return await self.publish(command["items"], HubLimits(**command.get("limits", {})))
        if op == "received":
            member = self.members[command["name"], command["channel"]]
            await until(lambda: len(member.publications) >= command["count"])
            return [[p.epoch, p.offset, p.payload.decode()] for p in member.publications]
        if op == "history":
            assert broker is not None
            return await self.history(broker, command)
        if op == "state":
            assert broker is not None
            wanted = LinkState(command["state"])
            await until(lambda: broker.state is wanted)
            return {"ok": True}
        raise ValueError(f"unknown op {op!r}")

    async def publish(self, items: list[list[str]], limits: HubLimits) -> list[Any]:
        sent = [
            self.brokers[name].publish(channel, SharedMessage(Opcode.TEXT, data.encode()), history=limits)
            for name, channel, data in items
        ]
        answers = []
        for deferred in sent:
            try:
                published = await deferred
            except Exception as error:  # the test checks which
                answers.append({"error": type(error).__name__, "message": str(error)})
            else:
                answers.append([published.epoch, published.offset])
        return answers

    async def history(self, broker: LinkedBroker, command: dict[str, Any]) -> Any:
        since = command.get("since")
        query = None if since is None else RecoveryQuery(since, command.get("epoch"))
        channel = command["channel"]
        try:
            state, entries = await broker.history(channel, Fetch(channel, query), HubLimits(**command["limits"]))
        except Exception as error:  # the test checks which
            return {"error": type(error).__name__, "message": str(error)}
        return {
            "state": [state.epoch, state.first_offset, state.last_offset],
            "entries": [[p.offset, p.payload.decode()] for p in entries],
        }

    def connectionLost(self, reason: object = None) -> None:
        stops = [broker.stop() for broker in self.brokers.values()]
        defer.DeferredList(stops).addBoth(lambda _: reactor.stop())


async def until(condition: Any) -> None:
    """Poll ``condition`` on the reactor (the command's timeout bounds it)."""
    while not condition():
        await task.deferLater(reactor, POLL_SECONDS)


def main() -> None:
    stdio.StandardIO(Driver(int(sys.argv[1])))
    reactor.run()  # type: ignore[attr-defined]


if __name__ == "__main__":
    main()
