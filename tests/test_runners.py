"""wsdaemon's log options under each runner (wsdaemon.runners): the same format under twist and twistd.

twistd's options are its public ``twisted.scripts.twistd.ServerOptions``, parsed as the
twistd command does. twist has no public options class; here a stand-in holds the
observer factory where twist keeps it, and the real ``twist`` runs in
tests/integration/test_lifecycle.py (as does the real ``twistd``).
"""

from __future__ import annotations

import io
import json
import sys
from typing import Any

import pytest
from twisted.application.service import Application, MultiService
from twisted.logger import ILogObserver, Logger, textFileLogObserver
from twisted.python import usage
from twisted.scripts.twistd import ServerOptions

from wsdaemon.logs import json_lines_observer, text_lines_observer
from wsdaemon.runners import TWIST_OBSERVER_KEY, TwistdLogObserver, for_runner, twistd_log_file
from wsdaemon.tap import Options


def twistd(*argv: str) -> Options:
    """wsdaemon's options, parsed as ``twistd ARGV`` parses them (a sub-command of twistd's own)."""
    options = ServerOptions()
    options.parseOptions(list(argv))
    assert isinstance(options.subOptions, Options)
    return options.subOptions


class TwistStandIn(usage.Options):
    """Holds the observer factory where twist's options hold it, with wsdaemon as its sub-command."""

    subCommands = [["wsdaemon", None, Options, "wsdaemon"]]

    def __init__(self) -> None:
        super().__init__()
        self[TWIST_OBSERVER_KEY] = textFileLogObserver  # what twist picks by itself


def twist(*argv: str) -> TwistStandIn:
    """The stand-in's options after parsing ``twist ARGV``."""
    options = TwistStandIn()
    options.parseOptions(list(argv))
    return options


def observer_on_application(options: Options) -> Any:
    """The log observer twistd would find on its application, once the service joined it."""
    application = Application("wsdaemon")
    for_runner(MultiService(), options, options.log_observer).setServiceParent(application)
    return application.getComponent(ILogObserver)


def written_by(observer: Any, stream: io.StringIO) -> str:
    """Log one event through ``observer``; what it wrote to ``stream``."""
    Logger(namespace="wsdaemon.test", observer=observer).info("websocket closed code={code}", code=1000)
    return stream.getvalue()


# --- twist -----------------------------------------------------------------------------------------------


def test_twist_gets_wsdaemons_text_observer_by_default():
    """Under twist, wsdaemon's text observer replaces twist's own choice (JSON off a terminal)."""
    assert twist("wsdaemon")[TWIST_OBSERVER_KEY] is text_lines_observer


def test_twist_gets_wsdaemons_json_observer_for_log_format_json():
    """Under twist, --log-format json gives twist wsdaemon's JSON lines observer."""
    assert twist("wsdaemon", "--log-format", "json")[TWIST_OBSERVER_KEY] is json_lines_observer


def test_under_twist_the_service_is_returned_as_it_is():
    """twist needs nothing wrapped around the daemon's service."""
    options = twist("wsdaemon").subOptions
    service = MultiService()
    assert for_runner(service, options, options.log_observer) is service


# --- twistd ----------------------------------------------------------------------------------------------


def test_twistd_json_goes_to_stdout_with_nodaemon(monkeypatch: pytest.MonkeyPatch):
    """`twistd -n wsdaemon --log-format json` logs JSON lines to stdout, as twistd -n logs text there."""
    stdout = io.StringIO()
    monkeypatch.setattr(sys, "stdout", stdout)
    observer = observer_on_application(twistd("-n", "wsdaemon", "--log-format", "json"))
    record = json.loads(written_by(observer, stdout))
    assert (record["message"], record["code"]) == ("websocket closed code=1000", 1000)


def test_twistd_text_is_wsdaemons_text(monkeypatch: pytest.MonkeyPatch):
    """Without --log-format, twistd -n logs wsdaemon's text lines (Twisted's classic format, our formatter)."""
    stdout = io.StringIO()
    monkeypatch.setattr(sys, "stdout", stdout)
    observer = observer_on_application(twistd("-n", "wsdaemon"))
    assert "[wsdaemon.test#info] websocket closed code=1000" in written_by(observer, stdout)


def test_twistd_logfile_gets_the_lines(tmp_path):
    """With --logfile, the JSON lines go to that file, as twistd's own lines would."""
    path = tmp_path / "daemon.log"
    observer = observer_on_application(twistd("-n", "--logfile", str(path), "wsdaemon", "--log-format", "json"))
    Logger(namespace="wsdaemon.test", observer=observer).info("hello {who}", who="file")
    assert json.loads(path.read_text())["who"] == "file"


def test_twistd_syslog_keeps_its_own_observer():
    """With twistd --syslog (and no --log-format) wsdaemon leaves twistd's observer alone."""
    assert observer_on_application(twistd("-n", "--syslog", "wsdaemon")) is None


@pytest.mark.parametrize("own", [["--syslog"], ["--logger", "twisted.logger.textFileLogObserver"]])
def test_log_format_with_twistds_own_observer_is_a_usage_error(own):
    """--log-format next to twistd's --syslog or --logger is refused instead of being silently ignored."""
    with pytest.raises(usage.UsageError, match="--log-format cannot be used with twistd"):
        twistd("-n", *own, "wsdaemon", "--log-format", "json")


def test_under_twistd_the_service_is_wrapped_to_set_the_observer():
    """Under twistd the daemon's service runs inside the wrapper that hands twistd the observer."""
    options = twistd("-n", "wsdaemon")
    service = MultiService()
    wrapped = for_runner(service, options, options.log_observer)
    assert isinstance(wrapped, TwistdLogObserver) and list(wrapped) == [service]


def test_daemonized_twistd_logs_to_twistd_log_by_default(tmp_path, monkeypatch: pytest.MonkeyPatch):
    """A daemonizing twistd with no --logfile logs to twistd.log in its directory, as twistd itself does."""
    monkeypatch.chdir(tmp_path)
    log_file = twistd_log_file({"logfile": None, "nodaemon": False})
    assert log_file is not None and log_file.name == "twistd.log"
    log_file.close()
    assert (tmp_path / "twistd.log").exists()
