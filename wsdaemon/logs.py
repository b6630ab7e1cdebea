"""Log output: human-readable text by default, or one JSON object per line.

Everything logs through ``twisted.logger``; this module only chooses how events are
written. ``twist`` builds the file observer from the factory in its options, so
``twist wsdaemon --log-format json`` puts :func:`json_lines_observer` there (see
:mod:`wsdaemon.tap`). The per-connection summary is one event, logged by the wire
protocol when a WebSocket closes, with its numbers as fields (``peer``, ``path``,
``subprotocol``, ``code``, ``reason``, ``duration``, ``bytes_in``, ``bytes_out``,
``messages_in``, ``messages_out``): text shows its message, JSON carries the fields too.

A worker process (``[process] workers`` above 1) names itself on every line: text lines
say ``worker=N`` before the message, JSON records carry ``"worker": N``.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable, Mapping
from typing import IO, Any

from twisted.logger import FileLogObserver, formatEvent, formatEventAsClassicLogText, formatTime

from wsdaemon.plugins import is_plugin_import_report

LOG_FORMATS = ("text", "json")
ObserverFactory = Callable[[IO[Any]], FileLogObserver]


def event_as_record(event: Mapping[str, Any]) -> dict[str, Any]:
    """A log event as a flat JSON-ready dict: time, level, namespace, message, then its own fields.

    Fields that JSON cannot hold are written as their ``repr``; a failure adds its traceback.
    """
    level = event.get("log_level")
    stamp = event.get("log_time")
    record: dict[str, Any] = {
        "time": datetime.datetime.fromtimestamp(stamp, datetime.UTC).isoformat() if stamp is not None else None,
        "level": getattr(level, "name", None),
        "namespace": event.get("log_namespace"),
        "message": formatEvent(dict(event)),
    }
    for name, value in event.items():
        if not name.startswith("log_") and name not in record and not name.startswith("_"):
            record[name] = value
    failure = event.get("log_failure")
    if failure is not None:
        record["traceback"] = failure.getTraceback()
    return record


def _json_line(event: Mapping[str, Any]) -> str | None:
    if "log_failure" in event or "failure" in event:
        if is_plugin_import_report(event):
            return None  # wsdaemon.plugins logs one line for it instead
    return json.dumps(event_as_record(event), default=repr, ensure_ascii=False) + "\n"


def json_lines_observer(out: IO[Any]) -> FileLogObserver:
    """Writes each event as one JSON object per line (for log shippers and ``jq``)."""
    return FileLogObserver(out, _json_line)


def worker_json_lines_observer(worker: int) -> ObserverFactory:
    """JSON lines whose records all carry ``"worker": worker``."""

    def line(event: Mapping[str, Any]) -> str:
        record = event_as_record(event)
        record["worker"] = worker
        return json.dumps(record, default=repr, ensure_ascii=False) + "\n"

    return lambda out: FileLogObserver(out, line)


class ClassicText:
    """Twisted's classic text line (``formatEventAsClassicLogText``), made cheap for plain events.

    Every closed connection logs a line, so on a server with many short
    connections the log line is a large part of the cost of each one:
    Twisted's formatter parses the format with ``string.Formatter`` and builds
    the local timestamp from scratch for every event. Here the timestamp is
    formatted once per second and a plain format (no ``{call()}``) goes through
    ``str.format_map``. The text is the same; anything unusual (a failure, a
    missing field, a multi-line message) is left to Twisted's formatter.
    """

    def __init__(self, label: str = "") -> None:
        self._second: int | None = None
        self._stamp = "-"
        self._label = f"{label} " if label else ""  # e.g. "worker=2 ", before each message

    def __call__(self, event: Mapping[str, Any]) -> str | None:
        text = self._plain_message(event)
        if text is None:
            if is_plugin_import_report(event):
                return None  # wsdaemon.plugins logs one line for it instead
            line = formatEventAsClassicLogText(dict(event))
            return line.replace("] ", f"] {self._label}", 1) if line and self._label else line
        when = event.get("log_time")
        if when is None:
            stamp = "-"
        else:
            second = int(when)
            if second != self._second:
                self._second, self._stamp = second, formatTime(second)
            stamp = self._stamp
        system = event.get("log_system")
        if system is None:
            level = event.get("log_level")
            system = f"{event.get('log_namespace', '-')}#{level.name if level is not None else '-'}"
        return f"{stamp} [{system}] {self._label}{text}\n"

    @staticmethod
    def _plain_message(event: Mapping[str, Any]) -> str | None:
        """The message via ``str.format_map``, or None where Twisted's formatter must decide."""
        log_format = event.get("log_format")
        if type(log_format) is not str or "()" in log_format or "log_failure" in event:
            return None
        try:
            text = log_format.format_map(event)
        except Exception:  # noqa: BLE001 - Twisted's formatter reports the problem in its own words
            return None
        return text if text and "\n" not in text else None


def text_lines_observer(out: IO[Any]) -> FileLogObserver:
    """Writes Twisted's classic text lines, with the timestamp in RFC 3339 (as ``twist`` does)."""
    return FileLogObserver(out, ClassicText())


def observer_factory(log_format: str, worker: int | None = None) -> ObserverFactory:
    """The file observer factory for ``log_format`` ("text" or "json"), naming ``worker`` if given.

    Raises:
        ValueError: an unknown format.
    """
    if log_format == "text":
        if worker is None:
            return text_lines_observer
        return lambda out: FileLogObserver(out, ClassicText(f"worker={worker}"))
    if log_format == "json":
        if worker is None:
            return json_lines_observer
        return worker_json_lines_observer(worker)
    raise ValueError(f"log format must be one of {', '.join(LOG_FORMATS)}, got {log_format!r}")
