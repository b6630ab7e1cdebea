"""What a WebSocket endpoint counts for /metrics: each upgrade's result and each connection's totals."""

from __future__ import annotations

from tests.helpers import Opcode
from tests.web.stack import Stack, http_request, upgrade_request
from wsdaemon.interfaces import ConnectionRejected
from wsdaemon.stats import EndpointStats


def echo_stats(stack: Stack) -> EndpointStats:
    """The /echo endpoint's stats, as its resource in the running tree holds them."""
    return stack.factory.runtime.current.root.children[b"echo"].stats  # type: ignore[attr-defined]


def test_accepted_and_refused_upgrades_are_counted_by_result():
    """A 101 counts as "accepted"; a wrong version as "426", a cross-origin one as "403", a POST as "405"."""
    stack = Stack()
    stack.upgraded("/echo")
    stack.connect().request(upgrade_request("/echo", version="8"))
    stack.connect().request(upgrade_request("/echo", headers=[("Origin", "https://evil.example")]))
    stack.connect().request(http_request("/echo", method="POST"))
    assert dict(echo_stats(stack).handshakes) == {"accepted": 1, "426": 1, "403": 1, "405": 1}


def test_a_handler_refusal_counts_its_status():
    """A handler factory that refuses with 404 counts as result "404"."""

    class Refusing:
        def buildProtocol(self, request):
            raise ConnectionRejected(404, "no such room")

    stack = Stack(factories={"/echo": Refusing()})
    assert stack.connect().request(upgrade_request("/echo")).status == 404
    assert dict(echo_stats(stack).handshakes) == {"404": 1}


def test_a_closed_connection_folds_its_counts_and_close_code():
    """After a close handshake the endpoint keeps the connection's bytes, messages and its close code."""
    stack = Stack()
    peer = stack.upgraded("/echo")
    stats = echo_stats(stack)
    peer.send_frame(Opcode.TEXT, b"hi")
    assert len(stats.live) == 1
    peer.send_frame(Opcode.CLOSE, (4000).to_bytes(2, "big"))
    peer.lose()
    assert stats.live == set()
    assert stats.messages_in == 1
    assert stats.bytes_in == (2 + 4 + 2) + (2 + 4 + 2)
    assert dict(stats.close_codes) == {4000: 1}
