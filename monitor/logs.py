"""Structured log lines: logfmt (``key=value``) for people and journald, or JSON for collectors.

Code logs a short event name plus fields: ``log.info("poll finished", extra=fields(source=...))``.
Keys that look like secrets are masked as a last line of defence; secrets are never passed here.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

_FIELDS = "replyclock_fields"
_SECRET_WORDS = ("password", "token", "secret", "authorization")


def fields(**values: Any) -> dict[str, Any]:
    """Wrap key/value pairs for ``logging``'s ``extra=`` argument."""
    return {_FIELDS: values}


def _fields_of(record: logging.LogRecord) -> dict[str, Any]:
    values = dict(getattr(record, _FIELDS, {}))
    for key in values:
        if any(word in key.lower() for word in _SECRET_WORDS):
            values[key] = "***"
    return values


def _base(record: logging.LogRecord) -> dict[str, Any]:
    stamp = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
    return {
        "ts": stamp.replace("+00:00", "Z"),
        "level": record.levelname.lower(),
        "logger": record.name,
        "msg": record.getMessage(),
    }


def _logfmt_value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    if text == "" or any(c in text for c in ' ="\\\n\t'):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    return text


class LogfmtFormatter(logging.Formatter):
    """``ts=... level=info logger=replyclock.imap msg="poll finished" source=support new=3``."""

    def format(self, record: logging.LogRecord) -> str:
        values = _base(record) | _fields_of(record)
        if record.exc_info:
            values["error"] = self.formatException(record.exc_info)
        return " ".join(f"{key}={_logfmt_value(value)}" for key, value in values.items())


class JsonFormatter(logging.Formatter):
    """One JSON object per line with the same keys as the logfmt format."""

    def format(self, record: logging.LogRecord) -> str:
        values = _base(record) | _fields_of(record)
        if record.exc_info:
            values["error"] = self.formatException(record.exc_info)
        return json.dumps(values, default=str, ensure_ascii=False)


def configure_logging(
    fmt: str = "logfmt", level: str = "info", stream: TextIO | None = None
) -> None:
    """Send replyclock's logs to ``stream`` (standard error by default) in the chosen format."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else LogfmtFormatter())
    root = logging.getLogger("replyclock")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False
    # APScheduler reports skipped runs of a still-running job as warnings: routine here.
    scheduler = logging.getLogger("apscheduler")
    scheduler.handlers[:] = [handler]
    scheduler.setLevel(logging.ERROR)
    scheduler.propagate = False
