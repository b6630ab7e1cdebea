"""Rate limits on a real daemon over real sockets: new connections per client address, messages per connection."""

from __future__ import annotations

from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.integration.support import close_handshake, response_head, upgrade

BURST = 4


def test_the_upgrade_after_the_burst_gets_429_with_retry_after(daemon_factory: Any) -> None:
    """connection_burst_per_ip upgrades from one address get 101; the next gets 429 with an integer Retry-After."""
    daemon = daemon_factory(f"[limits]\nconnection_burst_per_ip = {BURST}\nconnection_rate_per_ip = 0.01\n")
    accepted = [upgrade(daemon.port) for _ in range(BURST)]
    assert [response_head(sock)[0] for sock in accepted] == [101] * BURST
    refused = upgrade(daemon.port)
    status, headers = response_head(refused)
    assert status == 429
    assert headers["retry-after"].isdigit() and 1 <= int(headers["retry-after"]) <= 100  # 1 token / 0.01 per s
    other = upgrade(daemon.port, source="127.0.0.2")  # another client address is not slowed
    assert response_head(other)[0] == 101
    for sock in [*accepted, other]:
        close_handshake(sock)
    refused.close()


def test_a_client_sending_faster_than_message_rate_is_closed_with_1008(daemon_factory: Any) -> None:
    """With message_rate = 1 and message_burst = 5 on /echo, a real client's sixth message within a second gets 1008.

    Each of the first five is echoed before the next is sent, so the client never races
    the daemon's close with a send of its own.
    """
    daemon = daemon_factory('[[endpoints]]\npath = "/echo"\nhandler = "echo"\nmessage_rate = 1.0\nmessage_burst = 5\n')
    with connect(daemon.ws_url("/echo"), open_timeout=10, proxy=None) as ws:
        echoed = []
        for n in range(5):
            ws.send(f"m{n}")
            echoed.append(ws.recv(timeout=10))
        ws.send("m5")
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
    assert echoed == [f"m{n}" for n in range(5)]
    assert closed.value.rcvd is not None
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (1008, "message rate exceeded")
