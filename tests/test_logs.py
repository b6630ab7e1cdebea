"""Log output formats (wsdaemon.logs): text by default, JSON lines on request."""

from __future__ import annotations

import io
import json

import pytest
from twisted.logger import Logger, LogLevel, textFileLogObserver
from twisted.python.failure import Failure

from tests.broken_plugin import plugin_import_report
from wsdaemon.logs import ClassicText, event_as_record, json_lines_observer, observer_factory, text_lines_observer


def emit(observer_factory_: object, **fields: object) -> str:
    """Log one summary-like event through an observer made by the factory; what it wrote."""
    out = io.StringIO()
    observer = observer_factory_(out)  # type: ignore[operator]
    Logger(namespace="wsdaemon.test", observer=observer).info("websocket closed path={path} code={code}", **fields)
    return out.getvalue()


def test_text_is_the_observer_for_text():
    """ "text" gives the human-readable observer: a timestamp, the namespace and the message."""
    assert observer_factory("text") is text_lines_observer
    line = emit(observer_factory("text"), path="/echo", code=1000)
    assert "[wsdaemon.test#info] websocket closed path=/echo code=1000" in line


def _failure() -> Failure:
    try:
        raise ValueError("boom")
    except ValueError:
        return Failure()


CLASSIC_EVENTS = {
    "fields with conversions and specs": {"log_format": "a={a!r} b={b:.3f}", "a": "x", "b": 1.5},
    "no fields": {"log_format": "Starting reactor..."},
    "log_system instead of namespace": {"log_format": "hi {who}", "who": "you", "log_system": "-"},
    "no level": {"log_format": "plain", "log_level": None},
    "no time": {"log_format": "plain", "log_time": None},
    "attribute and index": {"log_format": "{p.real} {m[k]}", "p": 3, "m": {"k": "v"}},
    "call syntax": {"log_format": "{f()}", "f": lambda: "called"},
    "missing field": {"log_format": "{missing}"},
    "multi-line": {"log_format": "one\ntwo {x}", "x": "three\nfour"},
    "failure": {"log_format": "oops", "log_failure": _failure()},
    "empty message": {"log_format": ""},
    "no format": {},
    "braces escaped": {"log_format": "{{literal}} {x}", "x": 1},
}


@pytest.mark.parametrize("name", sorted(CLASSIC_EVENTS))
def test_text_lines_are_twisteds_classic_text(name):
    """Each line is exactly what Twisted's own text observer writes for the same event.

    The fast path (timestamp once per second, ``str.format_map``) must not
    change a character; the unusual events take Twisted's formatter.
    """
    event = {"log_namespace": "wsdaemon.test", "log_level": LogLevel.warn, "log_time": 1_790_000_000.25}
    event.update(CLASSIC_EVENTS[name])
    ours = io.StringIO()
    text_lines_observer(ours)(dict(event))
    assert ours.getvalue() == twisted_text_line(dict(event))


def test_text_timestamp_follows_the_clock_across_seconds():
    """The cached timestamp changes with the event's second (it is cached, not frozen)."""
    formatter = ClassicText()
    first = formatter({"log_format": "x", "log_time": 1_790_000_000.9})
    second = formatter({"log_format": "x", "log_time": 1_790_000_001.1})
    assert first is not None and second is not None
    assert first.split()[0] != second.split()[0]
    assert second == twisted_text_line({"log_format": "x", "log_time": 1_790_000_001.1})


def twisted_text_line(event: dict[str, object]) -> str:
    """What Twisted's own text observer writes for ``event``."""
    out = io.StringIO()
    textFileLogObserver(out)(event)
    return out.getvalue()


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


def test_bad_log_format_is_a_usage_error():
    """--log-format xml is refused when the options are parsed, before anything starts."""
    from twisted.python.usage import UsageError

    from wsdaemon.tap import Options

    with pytest.raises(UsageError, match="--log-format"):
        Options().parseOptions(["--log-format", "xml"])


def test_a_workers_text_lines_name_the_worker():
    """In a worker every text line says worker=N before the message, the summary line included."""
    line = emit(observer_factory("text", worker=2), path="/echo", code=1000)
    assert "[wsdaemon.test#info] worker=2 websocket closed path=/echo code=1000" in line


def test_a_workers_unusual_lines_name_the_worker_too():
    """Lines left to Twisted's own formatter (a failure) carry the worker as well."""
    out = io.StringIO()
    observer = observer_factory("text", worker=3)(out)
    Logger(namespace="wsdaemon.test", observer=observer).failure("it broke", _failure())
    assert "[wsdaemon.test#critical] worker=3 it broke" in out.getvalue()


def test_a_workers_json_records_carry_the_worker():
    """In JSON a worker's records have "worker": N."""
    record = json.loads(emit(observer_factory("json", worker=4), path="/echo", code=1000))
    assert record["worker"] == 4 and record["path"] == "/echo"


def test_twist_wsdaemon_worker_selects_the_worker_observer():
    """--worker N makes twist's observer name the worker."""
    from wsdaemon.tap import Options

    options = Options()
    options.parseOptions(["--worker", "2"])
    out = io.StringIO()
    Logger(namespace="x", observer=options.log_observer(out)).info("hello")
    assert "[x#info] worker=2 hello" in out.getvalue()


@pytest.mark.parametrize("factory", [text_lines_observer, json_lines_observer])
def test_twisted_plugin_import_tracebacks_are_left_to_wsdaemon_plugins(factory, tmp_path, monkeypatch):
    """twisted.plugin's critical traceback of a broken plugin module is not written (wsdaemon.plugins logs one line)."""
    out = io.StringIO()
    factory(out)(plugin_import_report(tmp_path, monkeypatch))
    assert out.getvalue() == ""


@pytest.mark.parametrize("factory", [text_lines_observer, json_lines_observer])
def test_the_debug_copy_of_a_plugin_import_traceback_is_written(factory, tmp_path, monkeypatch):
    """At debug level (wsdaemon's own scan, for --log-level debug) the traceback is written."""
    out = io.StringIO()
    factory(out)({**plugin_import_report(tmp_path, monkeypatch), "log_level": LogLevel.debug})
    assert "no_such_dependency_xyz" in out.getvalue()


@pytest.mark.parametrize("factory", [text_lines_observer, json_lines_observer])
def test_other_failures_are_written(factory):
    """Any other failure keeps its traceback in the log."""
    out = io.StringIO()
    Logger(namespace="wsdaemon.test", observer=factory(out)).failure("it broke", failure=_failure())
    assert "ValueError: boom" in out.getvalue() or "boom" in out.getvalue()
