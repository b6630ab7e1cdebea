"""Channels across two workers without Redis: the main process relays (``[process] workers = 2``, no ``[broker]``)."""

from __future__ import annotations

import contextlib
from pathlib import Path

from tests.integration.support import connections_by_process, wait_for_output
from tests.integration.test_broker_redis import TOKEN, api, receive
from tests.integration.test_handlers import ws
from tests.integration.test_workers import worker_pids

MEMBERS = 50


def workers_config(token_file: Path) -> str:
    """Two workers, a broadcast endpoint with a channel per room, the API; no [broker]."""
    return f"""
[process]
workers = 2
[limits]
drain_timeout_seconds = 3.0
connection_burst_per_ip = 200  # MEMBERS connect at once from 127.0.0.1, maybe all through one worker
[api]
token_file = "{token_file}"
[[endpoints]]
path = "/chat"
handler = "broadcast"
[endpoints.options]
channel_from_path = true
"""


def test_members_on_each_worker_get_every_broadcast_in_one_order(daemon_factory, tmp_path):
    """With two workers and no Redis, members on both workers get every message (text and binary) in one order."""
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    daemon = daemon_factory(workers_config(token_file))
    wait_for_output(daemon, "all 2 workers ready")
    pids = worker_pids(daemon)
    with contextlib.ExitStack() as stack:
        members = [stack.enter_context(ws(daemon.ws_url("/chat/room1"))) for _ in range(MEMBERS)]
        held = connections_by_process(daemon.port, list(pids.values()))
        assert all(count > 0 for count in held.values()), f"members on both workers: {held}"
        status, answer = api(daemon, "GET", "/api/presence?channel=/chat/room1")
        assert (status, answer["members"], answer["complete"]) == (200, MEMBERS, True), "presence counts both workers"
        for number, member in enumerate(members):
            member.send(f"text {number}" if number % 2 else f"binary {number}".encode())
        status, answer = api(daemon, "POST", "/api/publish", {"channel": "/chat/room1", "data": "from the API"})
        assert (status, answer["route"]) == (200, "broker")
        got = [receive(member, MEMBERS + 1) for member in members]
    assert all(sequence == got[0] for sequence in got), "every member, on either worker, sees one order"
    expected = {f"text {n}" if n % 2 else f"binary {n}".encode() for n in range(MEMBERS)} | {"from the API"}
    assert set(got[0]) == expected and len(got[0]) == MEMBERS + 1
