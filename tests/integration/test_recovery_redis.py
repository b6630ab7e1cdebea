"""History and recovery across two daemons on one real redis-server (docs/recovery.md).

A member of one instance disconnects, misses 100 messages published through the API of the other,
reconnects to its own instance with its position and gets exactly those 100 in order, then live ones;
the same while a publisher on the other instance keeps publishing during the replay; history survives
a restart of every daemon; after ``FLUSHALL`` the epoch is new and the member is told it was not
recovered.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed

from tests.integration.redis_support import RedisServer
from tests.integration.test_broker_redis import api, wait_subscribed
from tests.integration.test_handlers import closed_with, eventually, ws
from tests.integration.test_recovery import (
    CHANNEL,
    TOKEN,
    Publisher,
    first_notice,
    messages,
    position_of,
    reconnect_after_loss,
    recovery_config,
    replay_while_publishing,
)


def redis_config(redis: RedisServer, token_file: Path) -> str:
    """The envelope endpoint of test_recovery, its channels and history in Redis."""
    return recovery_config(token_file, f'[broker]\nurl = "{redis.url}"\nreconnect_initial_seconds = 0.1\n')


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    """The API token, in a file."""
    path = tmp_path / "api-token"
    path.write_text(TOKEN + "\n")
    return path


def two_daemons(daemon_factory: Any, redis: RedisServer, token_file: Path) -> tuple[Any, Any]:
    return daemon_factory(redis_config(redis, token_file)), daemon_factory(redis_config(redis, token_file))


def test_a_member_recovers_100_messages_published_on_the_other_instance(daemon_factory, redis_server, token_file):
    """Missed on B's API, recovered on A: `recovered`, exactly the 100 in order, then a live one from B."""
    first, second = two_daemons(daemon_factory, redis_server, token_file)
    on_first, on_second = Publisher(first), Publisher(second)
    epoch, offset = position_of(first, on_first, 2)
    missed = [on_second.publish(f"missed {n}") for n in range(100)]
    assert [(a["epoch"], a["offset"]) for a in missed] == [(epoch, offset + 1 + n) for n in range(100)]
    with ws(first.ws_url(f"{CHANNEL}?since={offset}&epoch={epoch}")) as member:
        assert first_notice(member) == {"type": "recovered", "channel": CHANNEL, "epoch": epoch, "offset": offset}
        assert messages(member, 100) == [(offset + 1 + n, f"missed {n}") for n in range(100)]
        wait_subscribed(redis_server, 1)
        live = on_second.publish("live from the other instance")
        assert live["offset"] == offset + 101
        assert messages(member, 1) == [(offset + 101, "live from the other instance")]
    on_first.close()
    on_second.close()


def test_recovery_while_the_other_instance_keeps_publishing(daemon_factory, redis_server, token_file):
    """A publisher on B sends 300 messages while a member of A replays: every offset once, in order."""
    first, second = two_daemons(daemon_factory, redis_server, token_file)
    on_second = Publisher(second)
    position = position_of(first, Publisher(first), 1)
    for n in range(100):
        on_second.publish(f"missed {n}")
    replay_while_publishing(first, second, position, 100)
    on_second.close()


def test_history_survives_a_restart_of_every_daemon(daemon_factory, redis_server, token_file):
    """Both daemons stopped, a new one started: the member's position is still good and it gets what it missed."""
    first, second = two_daemons(daemon_factory, redis_server, token_file)
    epoch, offset = position_of(first, Publisher(first), 1)
    on_second = Publisher(second)
    for n in range(5):
        on_second.publish(f"missed {n}")
    on_second.close()
    first.stop()
    second.stop()
    third = daemon_factory(redis_config(redis_server, token_file))
    with ws(third.ws_url(f"{CHANNEL}?since={offset}&epoch={epoch}")) as member:
        assert first_notice(member) == {"type": "recovered", "channel": CHANNEL, "epoch": epoch, "offset": offset}
        assert messages(member, 5) == [(offset + 1 + n, f"missed {n}") for n in range(5)]


def test_after_flushall_the_epoch_changes_and_the_member_is_not_recovered(daemon_factory, redis_server, token_file):
    """Redis flushed: the next publish starts a new epoch; reconnecting with the old position gets `epoch_changed`."""
    first, second = two_daemons(daemon_factory, redis_server, token_file)
    epoch, offset = position_of(first, Publisher(first), 3)
    redis_server.cli("FLUSHALL")
    on_second = Publisher(second)
    reconnect_after_loss(first, on_second, (epoch, offset), "after the flush")
    on_second.close()


def test_while_redis_is_down_connects_get_1013_and_publishes_503_then_recovery_resumes(
    daemon_factory, redis_server, token_file
):
    """Redis down: a reconnect is closed with 1013, the API answers 503; Redis back (empty): epoch_changed."""
    daemon = daemon_factory(redis_config(redis_server, token_file))
    epoch, offset = position_of(daemon, Publisher(daemon), 2)
    redis_server.kill()
    eventually(lambda: "connection lost" in daemon.output(), "the loss is logged")
    with ws(daemon.ws_url(f"{CHANNEL}?since={offset}&epoch={epoch}")) as member:
        assert closed_with(member) == (1013, "history unavailable, try again later")
    status, answer = api(daemon, "POST", "/api/publish", {"channel": CHANNEL, "data": "lost?"})
    assert status == 503 and "error" in answer
    redis_server.start()

    def answered() -> dict[str, Any] | None:
        with ws(daemon.ws_url(f"{CHANNEL}?since={offset}&epoch={epoch}")) as member:
            try:
                return first_notice(member)
            except ConnectionClosed:  # 1013 until the link is back
                return None

    eventually(lambda: answered() is not None, "history can be read again once Redis is back")
    notice = answered()
    assert notice is not None and notice["type"] == "not_recovered" and notice["reason"] == "epoch_changed"
    assert notice["epoch"] != epoch, "this redis-server kept nothing: the history was lost"
