"""``twist wsdaemon``: command-line options, startup errors and the twistd plugin (wsdaemon.tap)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from twisted.application.service import IService, IServiceMaker
from twisted.plugin import getPlugins
from twisted.python import usage

import wsdaemon.tap
from wsdaemon import __version__
from wsdaemon.plugins import DuplicateHandler
from wsdaemon.tap import Options, makeService

REPO_ROOT = Path(__file__).resolve().parent.parent


def parse(*argv: str) -> Options:
    options = Options()
    options.parseOptions(list(argv))
    return options


# --- options ------------------------------------------------------------------------------


def test_defaults_are_no_config_and_no_listen():
    """Without arguments there is no config file and no --listen override."""
    options = parse()
    assert options["config"] is None
    assert options["listen"] == []


def test_config_option_takes_a_path():
    """--config PATH (and -c PATH) names the configuration file."""
    assert parse("--config", "/etc/wsdaemon.toml")["config"] == "/etc/wsdaemon.toml"
    assert parse("-c", "other.toml")["config"] == "other.toml"


def test_listen_is_repeatable_and_keeps_order():
    """Each --listen (or -l) adds one endpoint string, in the order given."""
    options = parse("--listen", "tcp:8080", "-l", "tcp:8081:interface=127.0.0.1", "--listen=unix:/run/ws.sock")
    assert options["listen"] == ["tcp:8080", "tcp:8081:interface=127.0.0.1", "unix:/run/ws.sock"]


def test_listen_lists_are_not_shared_between_option_objects():
    """Two Options objects do not share one --listen list."""
    first = parse("--listen", "tcp:1")
    second = parse()
    assert (first["listen"], second["listen"]) == (["tcp:1"], [])


def test_version_prints_the_wsdaemon_version_and_exits_0(capsys):
    """--version prints "wsdaemon X.Y.Z" (not Twisted's version) and exits 0."""
    with pytest.raises(SystemExit) as exited:
        parse("--version")
    assert exited.value.code == 0
    assert capsys.readouterr().out.strip() == f"wsdaemon {__version__}"


def test_list_handlers_prints_echo_and_exits_0(capsys):
    """--list-handlers prints the installed handlers, echo included, and exits 0."""
    with pytest.raises(SystemExit) as exited:
        parse("--list-handlers")
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert any(line.startswith("echo: ") for line in out.splitlines())


def test_list_handlers_with_duplicate_plugins_exits_1(capsys, monkeypatch):
    """--list-handlers with two plugins claiming one name prints the problem to stderr and exits 1."""

    def duplicate(broken=None, moved=None):
        raise DuplicateHandler("handler name 'echo' is provided twice")

    monkeypatch.setattr(wsdaemon.tap, "discover_handlers", duplicate)
    with pytest.raises(SystemExit) as exited:
        parse("--list-handlers")
    assert exited.value.code == 1
    err = capsys.readouterr().err
    assert "provided twice" in err and "Traceback" not in err


def test_list_authenticators_prints_the_builtins_and_exits_0(capsys):
    """--list-authenticators prints none, jwt and basic with their options, and exits 0."""
    with pytest.raises(SystemExit) as exited:
        parse("--list-authenticators")
    assert exited.value.code == 0
    lines = capsys.readouterr().out.splitlines()
    assert {"none", "jwt", "basic"} <= {line.split(":")[0] for line in lines if not line.startswith(" ")}
    assert any(line.strip().startswith("algorithms: list (required)") for line in lines)


def test_unknown_option_is_a_usage_error():
    """An unknown option is refused with a UsageError (which twist prints with the usage text)."""
    with pytest.raises(usage.UsageError):
        parse("--no-such-option")


def test_help_mentions_every_option():
    """The --help text documents --config, --listen, --list-handlers and --list-authenticators."""
    text = str(Options())
    for option in ("--config", "--listen", "--list-handlers", "--list-authenticators", "--version"):
        assert option in text


# --- makeService ----------------------------------------------------------------------------


def write(tmp_path, text: str):
    path = tmp_path / "wsdaemon.toml"
    path.write_text(text)
    return path


def test_bad_config_file_prints_file_and_key_and_exits_1(tmp_path, capsys):
    """A config with a bad value prints one message naming the file and the key, exits 1, and shows no traceback."""
    path = write(tmp_path, "[limits]\nmax_message_bytes = -5\n")
    with pytest.raises(SystemExit) as exited:
        makeService(parse("--config", str(path)))
    assert exited.value.code == 1
    err = capsys.readouterr().err
    assert str(path) in err
    assert "limits.max_message_bytes" in err
    assert "Traceback" not in err


def test_unknown_handler_in_config_prints_key_and_exits_1(tmp_path, capsys):
    """A config naming an uninstalled handler fails at startup with endpoints[0].handler in the message."""
    path = write(tmp_path, '[[endpoints]]\npath = "/x"\nhandler = "does-not-exist"\n')
    with pytest.raises(SystemExit) as exited:
        makeService(parse("--config", str(path)))
    assert exited.value.code == 1
    err = capsys.readouterr().err
    assert str(path) in err and "endpoints[0].handler" in err
    assert "Traceback" not in err


def test_missing_config_file_prints_the_path_and_exits_1(tmp_path, capsys):
    """A --config path that does not exist is reported by name, exit status 1."""
    missing = tmp_path / "nowhere.toml"
    with pytest.raises(SystemExit) as exited:
        makeService(parse("--config", str(missing)))
    assert exited.value.code == 1
    assert str(missing) in capsys.readouterr().err


def test_bad_listen_option_exits_1(capsys):
    """An unparsable --listen string is reported and exits 1 before anything listens."""
    with pytest.raises(SystemExit) as exited:
        makeService(parse("--listen", "carrier-pigeon:8080"))
    assert exited.value.code == 1
    err = capsys.readouterr().err
    assert "carrier-pigeon:8080" in err and "Traceback" not in err


def test_good_config_builds_a_service_without_listening(tmp_path):
    """A valid config and --listen build the daemon service; nothing listens until it is started."""
    path = write(tmp_path, '[[endpoints]]\npath = "/ws"\nhandler = "echo"\n')
    service = makeService(parse("--config", str(path), "--listen", "tcp:0:interface=127.0.0.1"))
    assert IService.providedBy(service)
    assert not service.running


# --- the twistd plugin ------------------------------------------------------------------------


def test_service_maker_is_found_by_twisted_plugin():
    """twist/twistd find the "wsdaemon" ServiceMaker through getPlugins(IServiceMaker)."""
    makers = [maker for maker in getPlugins(IServiceMaker) if maker.tapname == "wsdaemon"]
    assert len(makers) == 1
    maker = makers[0]
    assert maker.options is Options
    assert maker.makeService is makeService
    assert maker.description


# --- workers --------------------------------------------------------------------------------


def test_several_workers_build_the_supervisor_and_one_builds_the_single_process(tmp_path):
    """[process] workers = 2 gives the main process's Supervisor; workers = 1 the service of before."""
    from wsdaemon.workers.supervisor import Supervisor

    two = makeService(parse("--config", str(write(tmp_path, "[process]\nworkers = 2\n"))))
    one = makeService(parse("--config", str(write(tmp_path, "[process]\nworkers = 1\n"))))
    assert isinstance(two, Supervisor) and len(two.slots) == 2
    assert not isinstance(one, Supervisor) and IService.providedBy(one)


def test_several_workers_under_twistd_are_refused(tmp_path, capsys):
    """twistd would daemonize every worker: workers > 1 asks for twist, exit 1."""
    options = parse("--config", str(write(tmp_path, "[process]\nworkers = 2\n")))
    options.parent = {"nodaemon": False}  # twistd's ServerOptions have this key; twist's have not
    with pytest.raises(SystemExit) as exited:
        makeService(options)
    assert exited.value.code == 1
    assert "runs under `twist wsdaemon`" in capsys.readouterr().err


def test_worker_option_takes_the_worker_number():
    """--worker N (added by the main process) is parsed as a number; absent, this is no worker."""
    assert parse()["worker"] is None
    assert parse("--worker", "3")["worker"] == 3


@pytest.mark.parametrize("option", ["--list-handlers", "--list-authenticators"])
def test_a_list_piped_into_a_reader_that_stopped_exits_quietly(option):
    """`twist wsdaemon --list-handlers | head -1` with the reader gone: exit 0, no BrokenPipeError on stderr."""
    process = subprocess.Popen(
        [sys.executable, "-m", "twisted", "wsdaemon", option],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    process.stdout.close()  # the reader is gone before the list is written
    _, err = process.communicate(timeout=60)
    assert (process.returncode, err.decode()) == (0, "")
