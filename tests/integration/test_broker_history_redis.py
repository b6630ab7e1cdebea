"""Channel history in a real redis-server: offsets, epochs and history shared by brokers of two processes.

Each "daemon" is a driver process (tests/integration/broker_driver.py) holding real Redis brokers
on the real reactor; a new driver is a daemon restart. Redis is started on a free port of
127.0.0.1 with no persistence, killed and restarted like a crash.
"""

from __future__ import annotations

import json
import select
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.redis_support import RedisServer
from tests.integration.test_handlers import PATIENCE_SECONDS, eventually

REPO_ROOT = Path(__file__).resolve().parents[2]
CHANNEL = "/chat/room1"
KEYS = [f"wsdaemon:history:{kind}:{CHANNEL}" for kind in ("epoch", "offset", "stream")]
LIMITS = {"history_size": 1000, "history_ttl_seconds": 300.0}


class Daemon:
    """One driver process: ask it a command, get its answer (bounded by PATIENCE_SECONDS)."""

    def __init__(self, redis: RedisServer) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.integration.broker_driver", str(redis.port)],
            cwd=REPO_ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=(redis.workdir / "driver.log").open("ab"),
        )

    def ask(self, **command: Any) -> Any:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps(command).encode() + b"\n")
        self.process.stdin.flush()
        ready, _, _ = select.select([self.process.stdout], [], [], PATIENCE_SECONDS + 5)
        if not ready:
            pytest.fail(f"the driver did not answer {command}", pytrace=False)
        line = self.process.stdout.readline()
        if not line:
            pytest.fail(f"the driver exited on {command}", pytrace=False)
        answer = json.loads(line)
        if isinstance(answer, dict) and "driver_error" in answer:
            pytest.fail(f"{command} failed in the driver: {answer['driver_error']}", pytrace=False)
        return answer

    def close(self) -> None:
        """EOF: the driver stops its brokers and exits."""
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(PATIENCE_SECONDS)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def daemons(redis_server: RedisServer) -> Iterator[Any]:
    """Start drivers (daemons) on the test's redis-server; all are closed at teardown."""
    started: list[Daemon] = []

    def start(*names: str) -> Daemon:
        daemon = Daemon(redis_server)
        started.append(daemon)
        for name in names:
            daemon.ask(op="start", name=name)
            daemon.ask(op="subscribe", name=name, channel=CHANNEL)
        return daemon

    try:
        yield start
    finally:
        for daemon in started:
            daemon.close()


def publish(daemon: Daemon, items: list[tuple[str, str]], limits: dict[str, Any] = LIMITS) -> list[Any]:
    """Positioned publishes ``(broker name, text)`` on CHANNEL, issued together; their answers."""
    return daemon.ask(op="publish", items=[[name, CHANNEL, data] for name, data in items], limits=limits)


def history(daemon: Daemon, name: str, since: int | None, epoch: str | None, limits=LIMITS) -> dict[str, Any]:
    return daemon.ask(op="history", name=name, channel=CHANNEL, since=since, epoch=epoch, limits=limits)


def test_two_daemons_get_one_gapless_sequence_of_offsets_and_the_same_order(daemons):
    """Publishes from both daemons, interleaved: offsets 1..N with no gap or repeat, each publisher's in its
    order, and members on both daemons get all N in offset order with the data of each offset."""
    first, second = daemons("a"), daemons("b")
    count = 150
    sent_first = publish(first, [("a", f"a-{n}") for n in range(count)])
    sent_second = publish(second, [("b", f"b-{n}") for n in range(count)])
    epochs = {epoch for epoch, _ in sent_first + sent_second}
    assert len(epochs) == 1
    offsets = sorted(offset for _, offset in sent_first + sent_second)
    assert offsets == list(range(1, 2 * count + 1)), "no gap, no repeat"
    for sent in (sent_first, sent_second):
        assert [offset for _, offset in sent] == sorted(offset for _, offset in sent), "a publisher's order is kept"
    by_offset = {offset: f"a-{n}" for n, (_, offset) in enumerate(sent_first)}
    by_offset.update({offset: f"b-{n}" for n, (_, offset) in enumerate(sent_second)})
    (epoch,) = epochs
    expected = [[epoch, offset, by_offset[offset]] for offset in range(1, 2 * count + 1)]
    for daemon, name in ((first, "a"), (second, "b")):
        assert daemon.ask(op="received", name=name, channel=CHANNEL, count=2 * count) == expected


def test_concurrent_publishes_from_two_brokers_are_positioned_atomically(daemons):
    """Two brokers of one daemon publishing alternately at once still share one gapless sequence."""
    daemon = daemons("a", "b")
    sent = publish(daemon, [("a" if n % 2 else "b", f"m{n}") for n in range(200)])
    assert sorted(offset for _, offset in sent) == list(range(1, 201))
    got = daemon.ask(op="received", name="a", channel=CHANNEL, count=200)
    assert [offset for _, offset, _ in got] == list(range(1, 201))
    assert got == daemon.ask(op="received", name="b", channel=CHANNEL, count=200)


def test_history_after_100_publishes_returns_them_and_survives_a_daemon_restart(daemons, redis_server):
    """History has the 100 messages, from any offset; a new daemon (a restart) sees the same epoch and history
    and continues the offsets."""
    first = daemons("a")
    sent = publish(first, [("a", f"m{n}") for n in range(100)])
    epoch = sent[0][0]
    everything = history(first, "a", 0, epoch)
    assert everything["state"] == [epoch, 1, 100]
    assert everything["entries"] == [[n + 1, f"m{n}"] for n in range(100)]
    assert history(first, "a", 60, epoch)["entries"] == [[n + 1, f"m{n}"] for n in range(60, 100)]
    assert history(first, "a", None, None) == {"state": [epoch, 1, 100], "entries": []}
    first.close()
    restarted = daemons("c")
    assert history(restarted, "c", 90, epoch)["entries"] == [[n + 1, f"m{n}"] for n in range(90, 100)]
    assert publish(restarted, [("c", "after the restart")]) == [[epoch, 101]]


def test_a_foreign_epoch_gets_every_kept_message(daemons):
    """A client of another epoch (or an offset ahead of the channel) is given everything history keeps."""
    daemon = daemons("a")
    sent = publish(daemon, [("a", f"m{n}") for n in range(5)])
    epoch = sent[0][0]
    for since, client_epoch in ((3, "someone-elses-epoch"), (99, epoch)):
        answer = history(daemon, "a", since, client_epoch)
        assert answer["state"] == [epoch, 1, 5] and [o for o, _ in answer["entries"]] == [1, 2, 3, 4, 5]


def test_a_channel_nobody_published_on_gets_an_epoch_that_its_first_message_keeps(daemons):
    """Reading an unknown channel creates its epoch at offset 0, and the first publish continues it."""
    daemon = daemons("a")
    state = history(daemon, "a", None, None)["state"]
    assert state[1:] == [1, 0]
    assert publish(daemon, [("a", "first")]) == [[state[0], 1]]


def test_flushall_gives_a_new_epoch_on_the_next_publish(daemons, redis_server):
    """Redis flushed: the keys are gone, so the next publish starts a new epoch at offset 1."""
    daemon = daemons("a")
    (before,) = publish(daemon, [("a", "x")] * 3)[-1:]
    redis_server.cli("FLUSHALL")
    (after,) = publish(daemon, [("a", "y")])
    assert after[0] != before[0] and after[1] == 1
    assert history(daemon, "a", 3, before[0])["state"] == [after[0], 1, 1]


def test_redis_killed_makes_history_unavailable_then_it_recovers(daemons, redis_server):
    """Redis down: positioned publishes and history reads fail with HistoryUnavailable (503), nothing queued;
    Redis back (without its data): publishes work again, in a new epoch."""
    daemon = daemons("a")
    (before,) = publish(daemon, [("a", "x")])
    redis_server.kill()
    daemon.ask(op="state", name="a", state="down")
    (failed,) = publish(daemon, [("a", "while down")])
    assert failed["error"] == "HistoryUnavailable" and "down" in failed["message"]
    assert history(daemon, "a", 0, before[0])["error"] == "HistoryUnavailable"
    redis_server.start()
    daemon.ask(op="state", name="a", state="up")
    (after,) = publish(daemon, [("a", "back")])
    assert after[0] != before[0] and after[1] == 1
    assert history(daemon, "a", 0, after[0])["entries"] == [[1, "back"]]


def test_the_keys_expire_after_history_ttl_seconds_and_the_channel_starts_a_new_epoch(daemons, redis_server):
    """Each publish renews the three keys' TTL; once an idle channel's keys expired, its next message starts over."""
    daemon = daemons("a")
    short = {"history_size": 10, "history_ttl_seconds": 1.0}
    (before,) = publish(daemon, [("a", "x")], short)
    for key in KEYS:
        assert 0 < int(redis_server.cli("PTTL", key)) <= 1000
    eventually(lambda: redis_server.cli("EXISTS", *KEYS) == "0", "the history keys expired")
    (after,) = publish(daemon, [("a", "y")], short)
    assert after[0] != before[0] and after[1] == 1


def test_history_size_trims_the_stream_and_keeps_the_newest_run_without_holes(daemons, redis_server):
    """MAXLEN ~ history_size: old entries go (approximately), what is kept is the newest, contiguous."""
    daemon = daemons("a")
    small = {"history_size": 10, "history_ttl_seconds": 300.0}
    sent = publish(daemon, [("a", f"m{n}") for n in range(500)], small)
    epoch = sent[0][0]
    answer = history(daemon, "a", 0, epoch, small)
    (_, first, last) = answer["state"]
    assert last == 500 and 1 < first <= 491
    assert [offset for offset, _ in answer["entries"]] == list(range(first, 501))
    assert int(redis_server.cli("XLEN", KEYS[2])) == 501 - first


def test_history_size_zero_keeps_nothing_but_still_gives_offsets(daemons, redis_server):
    """History off: offsets go on, no stream is kept."""
    daemon = daemons("a")
    off = {"history_size": 0}
    sent = publish(daemon, [("a", "x"), ("a", "y")], off)
    assert [offset for _, offset in sent] == [1, 2]
    assert redis_server.cli("EXISTS", KEYS[2]) == "0"
    assert history(daemon, "a", 0, sent[0][0], off) == {"state": [sent[0][0], 3, 2], "entries": []}


def test_a_lost_offset_key_or_the_last_offset_starts_a_new_epoch(daemons, redis_server):
    """The offset key evicted alone, or offsets used up to 2**53-1: a new epoch rather than a repeated offset."""
    daemon = daemons("a")
    (first,) = publish(daemon, [("a", "x")])
    redis_server.cli("DEL", KEYS[1])
    (second,) = publish(daemon, [("a", "y")])
    assert second[0] != first[0] and second[1] == 1
    redis_server.cli("SET", KEYS[1], str(2**53 - 1))
    (third,) = publish(daemon, [("a", "z")])
    assert third[0] not in (first[0], second[0]) and third[1] == 1


def test_a_flushed_script_cache_is_loaded_again(daemons, redis_server):
    """After SCRIPT FLUSH, EVALSHA answers NOSCRIPT: the script is sent again (EVAL) and the publish goes through."""
    daemon = daemons("a")
    (first,) = publish(daemon, [("a", "x")])
    redis_server.cli("SCRIPT", "FLUSH")
    assert publish(daemon, [("a", "y"), ("a", "z")]) == [[first[0], 2], [first[0], 3]]
    assert history(daemon, "a", 1, first[0])["entries"] == [[2, "y"], [3, "z"]]


def test_a_long_history_is_read_whole_across_the_scripts_chunks(daemons):
    """250 kept messages (read 100 at a time inside the script) come back complete and in order."""
    daemon = daemons("a")
    sent = publish(daemon, [("a", f"m{n}") for n in range(250)])
    answer = history(daemon, "a", 0, sent[0][0])
    assert answer["state"] == [sent[0][0], 1, 250]
    assert answer["entries"] == [[n + 1, f"m{n}"] for n in range(250)]
    assert history(daemon, "a", 120, sent[0][0])["entries"] == [[n + 1, f"m{n}"] for n in range(120, 250)]


def test_history_max_bytes_bounds_what_a_read_counts_as_kept(daemons):
    """Ten 100-byte messages with history_max_bytes 350: only the newest three count as kept, so a client at
    offset 2 is told its history expired (first offset 8) and gets those three; one at offset 8 is recovered."""
    daemon = daemons("a")
    limits = {"history_size": 100, "history_max_bytes": 350}
    sent = publish(daemon, [("a", f"{n:03d}" + "x" * 97) for n in range(10)], limits)
    epoch = sent[0][0]
    expired = history(daemon, "a", 2, epoch, limits)
    assert expired["state"] == [epoch, 8, 10] and [o for o, _ in expired["entries"]] == [8, 9, 10]
    recovered = history(daemon, "a", 8, epoch, limits)
    assert recovered["state"][1] <= 9 and [o for o, _ in recovered["entries"]] == [9, 10]
