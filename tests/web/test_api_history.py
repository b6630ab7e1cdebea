"""The publish API on channels with history: positioned publishes, epoch and offset in the answer, 503 without history."""

from __future__ import annotations

import json
from typing import Any

from twisted.application.service import MultiService
from twisted.internet.address import IPv4Address
from twisted.internet.defer import fail
from twisted.internet.testing import MemoryReactorClock, StringTransport

from tests.web.stack import Peer, Response, http_request, make_config
from wsdaemon.broker import HistoryUnavailable, InProcessBroker
from wsdaemon.handlers.broadcast import build_factory as broadcast_factory
from wsdaemon.hub import Fetch, HubLimits, RecoveryQuery
from wsdaemon.interfaces import HandlerContext
from wsdaemon.web.api import ApiAccess, channel_history
from wsdaemon.web.site import build_factory

TOKEN = b"s3cret-token-for-tests"
AUTH = ("Authorization", "Bearer " + TOKEN.decode())
EPOCH = "6743a1f0-9c1e2b3a4d5f6a7b"
CONFIG = """
[api]
token_file = "/dev/null"
[[endpoints]]
path = "/chat"
handler = "broadcast"
[[endpoints]]
path = "/plain"
handler = "broadcast"
[[endpoints]]
path = "/news"
handler = "broadcast"
"""


class Daemon:
    """The stack with the API on, /chat (envelope, channels by path), /plain (plain) and /news (history only)."""

    def __init__(self, broker: Any = None) -> None:
        self.clock = MemoryReactorClock()
        self.broker = broker or InProcessBroker(self.clock, epochs=iter([EPOCH, "second-epoch"]).__next__)
        context = HandlerContext(self.clock, MultiService(), self.broker)
        self.factories = {
            "/chat": broadcast_factory(
                {"envelope": "json", "channel_from_path": True, "history_size": 10}, "/chat", context
            ),
            "/plain": broadcast_factory({}, "/plain", context),
            "/news": broadcast_factory({"history_size": 3}, "/news", context),
        }
        config = make_config(CONFIG)
        access = ApiAccess(TOKEN, config.limits.max_message_bytes)
        self.site = build_factory(config, self.factories, self.clock, broker=self.broker, api=access)

    def publish(self, channel: str, data: str) -> Response:
        address = IPv4Address("TCP", "127.0.0.1", 40000)
        protocol = self.site.buildProtocol(address)
        protocol.makeConnection(StringTransport(hostAddress=IPv4Address("TCP", "127.0.0.1", 8080), peerAddress=address))
        body = json.dumps({"channel": channel, "data": data}).encode()
        return Peer(protocol, protocol.transport).request(
            http_request("/api/publish", method="POST", headers=(AUTH,), body=body)
        )


def test_a_publish_to_an_envelope_channel_answers_its_epoch_and_offset():
    """POST to a channel of an envelope endpoint: 200 with epoch and offset, one more per publish."""
    daemon = Daemon()
    first = json.loads(daemon.publish("/chat/room1", "a").body)
    second = json.loads(daemon.publish("/chat/room1", "b").body)
    assert first == {
        "channel": "/chat/room1",
        "bytes": 1,
        "binary": False,
        "route": "local",
        "epoch": EPOCH,
        "offset": 1,
    }
    assert (second["epoch"], second["offset"]) == (EPOCH, 2)


def test_the_published_offset_is_what_history_gives_a_reconnecting_client():
    """What the API answered is the position history keeps: a fetch after offset 1 returns offset 2's message."""
    daemon = Daemon()
    daemon.publish("/chat/room1", "a")
    daemon.publish("/chat/room1", "b")
    limits = daemon.factories["/chat"].history_limits
    assert limits is not None
    state, entries = daemon.broker.history_stores.answer(Fetch("/chat/room1", RecoveryQuery(1, EPOCH)), limits)
    assert (state.epoch, state.last_offset) == (EPOCH, 2) and [e.payload for e in entries] == [b"b"]


def test_a_channel_of_a_plain_endpoint_gets_no_position():
    """A channel of an endpoint with neither history nor envelope: the answer has no epoch or offset."""
    daemon = Daemon()
    body = json.loads(daemon.publish("/plain", "x").body)
    assert "epoch" not in body and "offset" not in body


def test_an_endpoint_with_history_but_no_envelope_still_positions():
    """history_size > 0 without envelope: the API still gets an offset (history is kept for later)."""
    daemon = Daemon()
    assert json.loads(daemon.publish("/news", "x").body)["offset"] == 1


def test_a_channel_no_endpoint_serves_is_published_plainly():
    """A channel outside every endpoint has no history bounds: a plain publish, as before."""
    daemon = Daemon()
    response = daemon.publish("/elsewhere", "x")
    assert response.status == 200 and "offset" not in json.loads(response.body)


def test_history_unavailable_is_503_with_the_reason():
    """The broker cannot position the message: 503 {"error": ...}, never a message without an offset."""

    class Down(InProcessBroker):
        def publish(self, channel, message, exclude=None, local_fallback=True, history=None):
            if history is not None:
                return fail(HistoryUnavailable("history is unavailable: the broker is down"))
            return super().publish(channel, message, exclude, local_fallback)

    daemon = Daemon(Down(MemoryReactorClock()))
    response = daemon.publish("/chat/room1", "x")
    assert response.status == 503
    assert json.loads(response.body) == {"error": "history is unavailable: the broker is down"}
    assert daemon.publish("/plain", "x").status == 200


def test_channel_history_ignores_factories_without_channels():
    """Handlers that have no channels (echo, tcp) are not asked."""
    limits = HubLimits(history_size=1)

    class Channels:
        endpoint = "/a"
        history_limits = limits

        def serves_channel(self, channel: str) -> bool:
            return channel == "/a"

    history = channel_history({"/echo": object(), "/a": Channels()})
    assert history("/a") is limits and history("/echo") is None
