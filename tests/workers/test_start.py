"""Building the main process of several workers (wsdaemon.workers.start): checked first, then supervised."""

from __future__ import annotations

import pytest
from twisted.internet.testing import MemoryReactorClock

from wsdaemon.config import ConfigError, parse_config
from wsdaemon.plugins import discover_handlers
from wsdaemon.workers.start import build_supervisor, worker_command
from wsdaemon.workers.supervisor import Supervisor


def test_worker_command_replays_the_main_command_line_with_this_interpreter():
    """Workers run what the main process was run as (python -m twisted, twist, a reactor script)."""
    argv = ["python3", "-m", "twisted", "--log-format=json", "wsdaemon", "--config", "w.toml"]
    assert worker_command(argv, "/venv/bin/python") == ["/venv/bin/python", *argv[1:]]
    twist = ["/venv/bin/python", "/venv/bin/twist", "wsdaemon"]
    assert worker_command(twist, "/venv/bin/python") == twist


def test_bad_handler_options_stop_the_main_process_before_any_worker():
    """A handler option that a worker would refuse is reported by the main process, all at once."""
    text = '[process]\nworkers = 2\n[[endpoints]]\npath = "/p"\nhandler = "process"\n[endpoints.options]\nmode = "x"\n'
    config = parse_config(text, "w.toml")
    with pytest.raises(ConfigError) as error:
        build_supervisor(config, discover_handlers(), MemoryReactorClock(), 2, command=["python"])
    assert "endpoints[0].options" in str(error.value)


def test_a_good_configuration_gives_the_supervisor_of_that_many_workers():
    """With a usable configuration the main process's service is the Supervisor of N workers."""
    config = parse_config("[process]\nworkers = 3\n", "w.toml")
    supervisor = build_supervisor(config, discover_handlers(), MemoryReactorClock(), 3, command=["python"])
    assert isinstance(supervisor, Supervisor) and len(supervisor.slots) == 3
