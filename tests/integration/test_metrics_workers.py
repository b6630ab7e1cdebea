"""/metrics with ``[process] workers = 2``: whichever worker answers, the scrape shows both, labelled."""

from __future__ import annotations

import contextlib

from tests.integration.support import free_port, wait_for_output
from tests.integration.test_metrics import scrape, value, wait_for
from tests.integration.test_workers import open_clients_on_every_worker, worker_pids

WORKERS_METRICS = "[process]\nworkers = 2\n[limits]\ndrain_timeout_seconds = 3.0\n[metrics]\nenabled = true\n"


def per_worker(found: dict, name: str, **labels: str) -> dict[str, float]:
    """One series' value on each worker, by worker label."""
    return {
        dict(key[1])["worker"]: sample
        for key, sample in found.items()
        if key[0] == name and all(dict(key[1]).get(label) == wanted for label, wanted in labels.items())
    }


def traffic_on_both_workers(daemon_factory, text: str) -> tuple:
    """A 2-worker daemon with echoing clients on both workers: (daemon, clients, their stack)."""
    daemon = daemon_factory(text)
    wait_for_output(daemon, "all 2 workers ready")
    stack = contextlib.ExitStack()
    clients, _ = open_clients_on_every_worker(stack, daemon, worker_pids(daemon))
    return daemon, clients, stack


def test_every_scrape_shows_both_workers_figures(daemon_factory):
    """The messages the clients sent add up over worker="1" and worker="2", each of which counted some."""
    daemon, clients, stack = traffic_on_both_workers(daemon_factory, WORKERS_METRICS)
    with stack:
        name = "wsdaemon_messages_received_total"
        for _ in range(4):  # scrapes land on either worker: each must show both
            found = wait_for(daemon.port, lambda s: sum(per_worker(s, name, endpoint="/echo").values()) == len(clients))
            counts = per_worker(found, name, endpoint="/echo")
            assert set(counts) == {"1", "2"} and all(count > 0 for count in counts.values())
            opened = per_worker(found, "wsdaemon_connections_open", endpoint="/echo")
            assert sum(opened.values()) == len(clients)


def test_metrics_listen_is_served_by_the_main_process_with_both_workers(daemon_factory):
    """With [metrics] listen and workers, the main process serves /metrics there, with each worker's figures."""
    port = free_port()
    text = WORKERS_METRICS + f'listen = "tcp:{port}:interface=127.0.0.1"\n'
    daemon, clients, stack = traffic_on_both_workers(daemon_factory, text)
    with stack:
        assert scrape(daemon.port)[0] == 404
        name = "wsdaemon_messages_received_total"
        found = wait_for(port, lambda s: sum(per_worker(s, name, endpoint="/echo").values()) == len(clients))
        assert set(per_worker(found, name, endpoint="/echo")) == {"1", "2"}
        assert value(found, "wsdaemon_broker_link_up", state="up", worker="1") == 1  # the relay to the main process
