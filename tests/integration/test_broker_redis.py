"""Channels across two daemons through a real redis-server on 127.0.0.1 (the ``[broker]``), and the publish API.

Two daemon instances on different ports share one redis-server started on a free port; members on
both get every message published on either, in one order, text and binary; the API and redis-cli
reach members on both; presence counts both; Redis killed: both stay up and deliver locally; Redis
restarted: cross-instance delivery resumes by itself.
"""

from __future__ import annotations

import base64
import http.client
import json
import threading
from pathlib import Path
from typing import Any

import pytest

from tests.integration.redis_support import RedisServer
from tests.integration.support import LOOPBACK
from tests.integration.test_handlers import TIMEOUT, eventually, ws

TOKEN = "integration-test-token-0123456789"
CHANNEL = "/chat/room1"


def broker_config(redis: RedisServer, token_file: Path, extra: str = "") -> str:
    """A daemon with a broadcast endpoint at /chat (a channel per room), the Redis broker and the API."""
    return f"""
[broker]
url = "{redis.url}"
reconnect_initial_seconds = 0.1
reconnect_max_seconds = 0.5
presence_refresh_seconds = 0.5
{extra}
[api]
token_file = "{token_file}"

[[endpoints]]
path = "/chat"
handler = "broadcast"
[endpoints.options]
channel_from_path = true
"""


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    """The API token, in a file."""
    path = tmp_path / "api-token"
    path.write_text(TOKEN + "\n")
    return path


def api(daemon: Any, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
    """One API request with the token; the status and the JSON answer."""
    connection = http.client.HTTPConnection(LOOPBACK, daemon.port, timeout=TIMEOUT)
    try:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
        connection.request(method, path, body=data, headers=headers)
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def presence(daemon: Any, channel: str = CHANNEL) -> int:
    """Members of ``channel`` everywhere, as the daemon's API counts them."""
    status, answer = api(daemon, "GET", f"/api/presence?channel={channel}")
    assert status == 200, answer
    return int(answer["members"])


def wait_subscribed(redis: RedisServer, count: int, channel: str = CHANNEL) -> None:
    """Until ``count`` daemons subscribe the channel in Redis."""
    eventually(lambda: redis.subscribers("wsdaemon:" + channel) == count, f"{count} daemons subscribed to {channel}")


def receive(connection: Any, count: int) -> list[Any]:
    """The next ``count`` messages of one member."""
    return [connection.recv(TIMEOUT) for _ in range(count)]


def test_members_on_both_instances_get_every_message_in_one_order(daemon_factory, redis_server, token_file):
    """Messages published concurrently on two daemons reach every member on both, text and binary, in one order."""
    first, second = (daemon_factory(broker_config(redis_server, token_file)) for _ in range(2))
    with (
        ws(first.ws_url("/chat/room1")) as a1,
        ws(first.ws_url("/chat/room1")) as a2,
        ws(second.ws_url("/chat/room1")) as b1,
    ):
        wait_subscribed(redis_server, 2)
        count = 200

        def publish(connection: Any, name: str) -> None:
            for n in range(count):
                connection.send(f"{name}-{n}" if n % 3 else f"{name}-{n}".encode() + b"\x00\xff")

        threads = [threading.Thread(target=publish, args=(a1, "a")), threading.Thread(target=publish, args=(b1, "b"))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        got = [receive(member, 2 * count) for member in (a1, a2, b1)]
    assert got[0] == got[1] == got[2], "every member sees the same order"
    for name in ("a", "b"):
        mine = [m for m in got[0] if (m if isinstance(m, str) else m.decode("latin-1")).startswith(name + "-")]
        expected = [f"{name}-{n}" if n % 3 else f"{name}-{n}".encode() + b"\x00\xff" for n in range(count)]
        assert mine == expected, f"publisher {name}'s messages arrive complete and in its order"


def test_the_api_and_redis_cli_reach_members_on_both_and_presence_counts_both(daemon_factory, redis_server, token_file):
    """POST /api/publish on one daemon and redis-cli PUBLISH reach members on both; presence counts all three."""
    first, second = (daemon_factory(broker_config(redis_server, token_file)) for _ in range(2))
    with (
        ws(first.ws_url("/chat/room1")) as a1,
        ws(second.ws_url("/chat/room1")) as b1,
        ws(second.ws_url("/chat/room1")) as b2,
    ):
        wait_subscribed(redis_server, 2)
        eventually(lambda: presence(first) == 3 and presence(second) == 3, "presence counts members on both")
        status, answer = api(first, "POST", "/api/publish", {"channel": CHANNEL, "data": "from the API"})
        assert (status, answer["route"], answer["bytes"]) == (200, "broker", 12)
        status, _ = api(
            second, "POST", "/api/publish", {"channel": CHANNEL, "b64": base64.b64encode(b"\x00\x01").decode()}
        )
        assert status == 200
        assert redis_server.cli("PUBLISH", "wsdaemon:" + CHANNEL, "thello from redis-cli") == "2"
        redis_server.cli("-x", "PUBLISH", "wsdaemon:" + CHANNEL, stdin=b"b\x00\xffraw")
        for member in (a1, b1, b2):
            assert receive(member, 4) == ["from the API", b"\x00\x01", "hello from redis-cli", b"\x00\xffraw"]


def test_presence_forgets_a_daemon_that_died_without_goodbye(daemon_factory, redis_server, token_file):
    """A daemon killed with SIGKILL stops being counted once its presence entry expires (3 refreshes)."""
    first, second = (daemon_factory(broker_config(redis_server, token_file)) for _ in range(2))
    with ws(first.ws_url("/chat/room1")), ws(second.ws_url("/chat/room1")), ws(second.ws_url("/chat/room1")):
        eventually(lambda: presence(first) == 3, "presence counts members on both")
        second.process.kill()
        second.process.wait(TIMEOUT)
        eventually(lambda: presence(first) == 1, "the dead daemon's members are no longer counted")


def test_redis_killed_and_restarted(daemon_factory, redis_server, token_file):
    """Redis killed: both daemons stay up and deliver locally; restarted: cross-instance delivery resumes by itself."""
    first = daemon_factory(broker_config(redis_server, token_file))
    second = daemon_factory(broker_config(redis_server, token_file, "required = true"))
    with (
        ws(first.ws_url("/chat/room1")) as a1,
        ws(first.ws_url("/chat/room1")) as a2,
        ws(second.ws_url("/chat/room1")) as b1,
    ):
        wait_subscribed(redis_server, 2)
        a1.send("before")
        assert receive(a1, 1) == receive(a2, 1) == receive(b1, 1) == ["before"]

        redis_server.kill()
        eventually(lambda: "connection lost" in first.output() and "connection lost" in second.output(), "loss logged")
        assert first.healthy(), "a daemon without required = true stays healthy"
        eventually(lambda: not second.healthy(), "required = true: /healthz 503 while Redis is down")
        a1.send("during")
        assert receive(a1, 1) == receive(a2, 1) == ["during"], "local delivery continues"
        status, answer = api(first, "POST", "/api/publish", {"channel": CHANNEL, "data": "api during"})
        assert (status, answer["route"]) == (200, "queued")
        assert receive(a2, 1) == ["api during"]

        redis_server.start()
        wait_subscribed(redis_server, 2)
        eventually(second.healthy, "/healthz 200 again once Redis is back")
        a1.send("after")
        assert receive(a2, 1) == ["after"]
        assert receive_until(b1, "after")[-1] == "after", "cross-instance delivery resumed"
    for daemon in (first, second):
        assert daemon.output().count("connection lost") == 1, "the loss is logged once, not once per retry"
        assert daemon.process.poll() is None or daemon.process.returncode == 0


def receive_until(connection: Any, last: str) -> list[Any]:
    """Messages up to and including ``last`` (the ones queued during the outage may come first)."""
    got: list[Any] = []
    while not got or got[-1] != last:
        got.append(connection.recv(TIMEOUT))
    return got
