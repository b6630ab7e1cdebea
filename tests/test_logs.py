"""Log output formats (wsdaemon.logs): text by default, JSON lines on request."""

from __future__ import annotations

import io
import json

import pytest
from twisted.logger import Logger, LogLevel, textFileLogObserver
from twisted.python.failure import Failure

from wsdaemon.logs import event_as_record, json_lines_observer, observer_factory


def emit(observer_factory_: object, **fields: object) -> str:
    """Log one summary-like event through an observer made by the factory; what it wrote."""
    out = io.StringIO()
    observer = observer_factory_(out)  # type: ignore[operator]
    Logger(namespace="wsdaemon.test", observer=observer).info("websocket closed path={path} code={code}", **fields)
    return out.getvalue()


def test_text_is_the_observer_for_text():
    """ "text" gives Twisted's human-readable observer: a timestamp, the namespace and the message."""
    assert observer_factory("text") is textFileLogObserver
    line = emit(observer_factory("text"), path="/echo", code=1000)
    assert "[wsdaemon.test#info] websocket closed path=/echo code=1000" in line


def test_json_writes_one_object_per_line_with_the_fields():
    """ "json" writes one JSON object per line: time, level, namespace, message and the event's own fields."""
    written = emit(observer_factory("json"), path="/echo", code=1001)
    (line,) = written.splitlines()
    record = json.loads(line)
    assert record["level"] == "info" and record["namespace"] == "wsdaemon.test"
    assert record["message"] == "websocket closed path=/echo code=1001"
    assert (record["path"], record["code"]) == ("/echo", 1001)
    assert record["time"].endswith("+00:00")


def test_json_line_has_no_record_separator():
    """JSON lines, not RFC 7464 sequences: no \\x1e before each record (jq and log shippers read lines)."""
    assert "\x1e" not in emit(json_lines_observer, path="/", code=1000)


def test_json_writes_unserialisable_fields_as_repr():
    """A field JSON cannot hold (an object) is written as its repr rather than failing the log line."""

    class Thing:
        def __repr__(self) -> str:
            return "<thing>"

    record = json.loads(emit(json_lines_observer, path=Thing(), code=1))
    assert record["path"] == "<thing>"


def test_json_failure_carries_the_traceback():
    """An event logged with a failure includes its traceback in the record."""
    try:
        raise ValueError("boom")
    except ValueError:
        failure = Failure()
    record = event_as_record(
        {
            "log_level": LogLevel.critical,
            "log_time": 0.0,
            "log_format": "oops",
            "log_failure": failure,
            "log_namespace": "x",
        }
    )
    assert "ValueError: boom" in record["traceback"]
    assert record["level"] == "critical"


def test_unknown_format_is_refused():
    """Only "text" and "json" exist."""
    with pytest.raises(ValueError, match="text, json"):
        observer_factory("xml")


def twist_options(*argv: str):
    """``twist`` options parsed the way the twist command does, wsdaemon as the plugin."""
    from twisted.application.twist._options import TwistOptions

    options = TwistOptions()
    options.parseOptions(list(argv))
    return options


def test_twist_wsdaemon_logs_text_by_default_even_off_a_terminal():
    """Under twist, wsdaemon's default --log-format text replaces twist's JSON default for non-terminals."""
    options = twist_options("wsdaemon")
    assert options["fileLogObserverFactory"] is textFileLogObserver
    assert options["logFormat"] == "text"


def test_twist_wsdaemon_log_format_json_selects_json_lines():
    """twist wsdaemon --log-format json writes JSON lines."""
    options = twist_options("wsdaemon", "--log-format", "json")
    assert options["fileLogObserverFactory"] is json_lines_observer


def test_bad_log_format_is_a_usage_error():
    """--log-format xml is refused when the options are parsed, before anything starts."""
    from twisted.python.usage import UsageError

    from wsdaemon.tap import Options

    with pytest.raises(UsageError, match="--log-format"):
        Options().parseOptions(["--log-format", "xml"])
