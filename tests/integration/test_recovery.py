"""History and recovery on a real daemon (in-process broker), with the `websockets` client and the publish API.

A member disconnects, misses 100 messages published through the API, reconnects with
``?since=OFFSET&epoch=EPOCH`` and gets exactly those 100 in order, then live ones; the same while a
publisher keeps publishing during the replay; after a daemon restart the epoch is new and the member
is told it was not recovered (docs/recovery.md); with two workers the main process keeps the history
for both.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import threading
from pathlib import Path
from typing import Any

import pytest

from tests.integration.support import LOOPBACK, connections_by_process, wait_for_output
from tests.integration.test_handlers import TIMEOUT, refused_status, ws
from tests.integration.test_workers import worker_pids

TOKEN = "integration-test-token-0123456789"
CHANNEL = "/chat/room1"


def recovery_config(token_file: Path, extra: str = "") -> str:
    """A daemon with an envelope endpoint at /chat (a channel per room), history and the API."""
    return f"""
{extra}
[api]
token_file = "{token_file}"

[[endpoints]]
path = "/chat"
handler = "broadcast"
[endpoints.options]
channel_from_path = true
envelope = "json"
history_size = 1000
"""


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    """The API token, in a file."""
    path = tmp_path / "api-token"
    path.write_text(TOKEN + "\n")
    return path


class Publisher:
    """POST /api/publish over one kept-alive HTTP connection."""

    def __init__(self, daemon: Any) -> None:
        self.connection = http.client.HTTPConnection(LOOPBACK, daemon.port, timeout=TIMEOUT)

    def publish(self, data: str, channel: str = CHANNEL) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
        self.connection.request("POST", "/api/publish", json.dumps({"channel": channel, "data": data}), headers)
        response = self.connection.getresponse()
        answer = json.loads(response.read())
        assert response.status == 200, answer
        return answer

    def close(self) -> None:
        self.connection.close()


def next_envelope(connection: Any) -> dict[str, Any]:
    """The next message: a text message holding one JSON object."""
    message = connection.recv(TIMEOUT)
    assert isinstance(message, str), message
    item = json.loads(message)
    assert isinstance(item, dict)
    return item


def first_notice(connection: Any) -> dict[str, Any]:
    item = next_envelope(connection)
    assert "type" in item, item
    return item


def messages(connection: Any, count: int) -> list[tuple[int, str]]:
    """The next ``count`` messages as (offset, data); a notice among them fails the test."""
    got = []
    for _ in range(count):
        item = next_envelope(connection)
        assert "type" not in item, item
        got.append((item["offset"], item["data"]))
    return got


def position_of(daemon: Any, publisher: Publisher, count: int) -> tuple[str, int]:
    """Join, receive ``count`` published messages, leave: the position reached."""
    with ws(daemon.ws_url(CHANNEL)) as member:
        subscribed = first_notice(member)
        assert subscribed["type"] == "subscribed"
        answers = [publisher.publish(f"seen {n}") for n in range(count)]
        got = messages(member, count)
        assert got == [(answer["offset"], f"seen {n}") for n, answer in enumerate(answers)]
        return subscribed["epoch"], got[-1][0]


def reconnect_after_loss(daemon: Any, publisher: Publisher, position: tuple[str, int], first: str) -> None:
    """History was lost: ``first`` opens a new epoch at offset 1, and the old position gets `epoch_changed`."""
    epoch, offset = position
    after = publisher.publish(first)
    assert after["offset"] == 1 and after["epoch"] != epoch
    with ws(daemon.ws_url(f"{CHANNEL}?since={offset}&epoch={epoch}")) as member:
        assert first_notice(member) == {
            "type": "not_recovered",
            "channel": CHANNEL,
            "epoch": after["epoch"],
            "offset": 0,
            "reason": "epoch_changed",
        }
        assert messages(member, 1) == [(1, first)]


def test_a_member_that_missed_100_messages_gets_exactly_those_then_live(daemon_factory, token_file):
    """Reconnect with the last position: `recovered`, the 100 missed messages in order, then a live one."""
    daemon = daemon_factory(recovery_config(token_file))
    publisher = Publisher(daemon)
    epoch, offset = position_of(daemon, publisher, 3)
    missed = [publisher.publish(f"missed {n}") for n in range(100)]
    assert [answer["offset"] for answer in missed] == list(range(offset + 1, offset + 101))
    assert {answer["epoch"] for answer in missed} == {epoch}
    with ws(daemon.ws_url(f"{CHANNEL}?since={offset}&epoch={epoch}")) as member:
        assert first_notice(member) == {"type": "recovered", "channel": CHANNEL, "epoch": epoch, "offset": offset}
        assert messages(member, 100) == [(offset + 1 + n, f"missed {n}") for n in range(100)]
        live = publisher.publish("live")
        assert messages(member, 1) == [(live["offset"], "live")] and live["offset"] == offset + 101
    publisher.close()


def replay_while_publishing(member_daemon: Any, sender_daemon: Any, position: tuple[str, int], missed: int) -> None:
    """Reconnect to ``member_daemon`` while a WebSocket member of ``sender_daemon`` sends 300 messages.

    The member missed ``missed`` messages (``missed 0``, ...) after ``position``; it must get those
    and the 300, each offset once, in order.
    """
    epoch, offset = position
    expected = [f"missed {n}" for n in range(missed)] + [f"during {n}" for n in range(300)]
    with ws(sender_daemon.ws_url(CHANNEL)) as sender:
        assert first_notice(sender)["type"] == "subscribed"
        started = threading.Event()

        def keep_publishing() -> None:
            for n in range(300):
                sender.send(f"during {n}")
                if n == 20:
                    started.set()

        thread = threading.Thread(target=keep_publishing)
        thread.start()
        started.wait(TIMEOUT)
        with ws(member_daemon.ws_url(f"{CHANNEL}?since={offset}&epoch={epoch}")) as member:
            assert first_notice(member)["type"] == "recovered"
            got = messages(member, len(expected))
        thread.join(TIMEOUT)
    assert [o for o, _ in got] == list(range(offset + 1, offset + 1 + len(expected))), "no gap, no duplicate"
    assert [data for _, data in got] == expected


def test_recovery_while_a_publisher_keeps_publishing_has_no_gap_and_no_duplicate(daemon_factory, token_file):
    """A member reconnects while a WebSocket publisher sends 300 messages: every offset once, in order, none lost."""
    daemon = daemon_factory(recovery_config(token_file))
    publisher = Publisher(daemon)
    position = position_of(daemon, publisher, 1)
    for n in range(100):
        publisher.publish(f"missed {n}")
    replay_while_publishing(daemon, daemon, position, 100)
    publisher.close()


def test_after_a_restart_the_epoch_is_new_and_the_member_is_not_recovered(daemon_factory, token_file):
    """An in-process daemon restarted on the same port: history is gone, a new epoch, `not_recovered` (epoch_changed)."""
    first = daemon_factory(recovery_config(token_file))
    publisher = Publisher(first)
    epoch, offset = position_of(first, publisher, 2)
    publisher.close()
    port = first.port
    first.stop()
    second = daemon_factory(recovery_config(token_file), port=port)
    publisher = Publisher(second)
    reconnect_after_loss(second, publisher, (epoch, offset), "first after the restart")
    publisher.close()


def test_a_malformed_query_is_a_400_on_the_wire(daemon_factory, token_file):
    """A real client asking with a negative since is refused at the handshake with 400."""
    daemon = daemon_factory(recovery_config(token_file))
    assert refused_status(daemon.ws_url(f"{CHANNEL}?since=-1")) == 400


def test_a_quiet_member_gets_heartbeats(daemon_factory, token_file):
    """With a 1 s ping interval a member of a quiet channel hears a `heartbeat` notice with its position."""
    daemon = daemon_factory(recovery_config(token_file, "[limits]\nping_interval_seconds = 1\n"))
    with ws(daemon.ws_url(CHANNEL)) as member:
        subscribed = first_notice(member)
        heartbeat = first_notice(member)
    assert heartbeat == {**subscribed, "type": "heartbeat"}


def test_members_on_both_workers_recover_what_they_missed(daemon_factory, token_file):
    """With two workers and no Redis, the main process keeps history: reconnects on either worker are recovered."""
    daemon = daemon_factory(
        recovery_config(token_file, "[process]\nworkers = 2\n[limits]\ndrain_timeout_seconds = 3.0\n")
    )
    wait_for_output(daemon, "all 2 workers ready")
    publisher = Publisher(daemon)
    epoch, offset = position_of(daemon, publisher, 1)
    for n in range(100):
        publisher.publish(f"missed {n}")
    query = f"{CHANNEL}?since={offset}&epoch={epoch}"
    with contextlib.ExitStack() as stack:
        members = [stack.enter_context(ws(daemon.ws_url(query))) for _ in range(20)]
        held = connections_by_process(daemon.port, list(worker_pids(daemon).values()))
        assert all(count > 0 for count in held.values()), f"members on both workers: {held}"
        for member in members:
            assert first_notice(member)["type"] == "recovered"
            assert messages(member, 100) == [(offset + 1 + n, f"missed {n}") for n in range(100)]
        live = publisher.publish("live")
        for member in members:
            assert messages(member, 1) == [(live["offset"], "live")]
    publisher.close()
