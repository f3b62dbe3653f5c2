"""Log lines for people (``LOG_FORMAT=text``) or for a log platform (``json``).

JSON is one object a line: ``time`` (UTC, ISO 8601), ``level``, ``logger``,
``session_id`` (or null), ``event`` (``extra={"event": ...}`` or else the
message template: the same for every line of one kind, what a platform
groups by), ``message`` (rendered),
``fields`` (what the call passed as ``extra={"fields": {...}}``) and, with
an exception, ``exc``. Both formats go through the same ``Redactor``, so
keys, secrets and tokens stay out either way.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
from typing import Any, TextIO

from media_server.log_context import SESSION_ID
from media_server.redaction import Redactor

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# aiohttp's access log renders its line itself and hands the parts over as
# record attributes: those become the fields of an "http_request" event.
ACCESS_LOGGER = "aiohttp.access"
ACCESS_FIELDS = ("remote_address", "first_request_line", "response_status", "response_size")


def _session_id(record: logging.LogRecord) -> str | None:
    return getattr(record, "session_id", None) or SESSION_ID.get()


class TextFormatter(logging.Formatter):
    def __init__(self, redact: Redactor) -> None:
        super().__init__(TEXT_FORMAT)
        self._redact = redact

    def format(self, record: logging.LogRecord) -> str:
        return self._redact(super().format(record))


class JsonFormatter(logging.Formatter):
    def __init__(self, redact: Redactor) -> None:
        super().__init__()
        self._redact = redact

    def format(self, record: logging.LogRecord) -> str:
        event = getattr(record, "event", None) or str(record.msg)
        fields = getattr(record, "fields", None) or {}
        if record.name == ACCESS_LOGGER:
            event = "http_request"
            fields = {k: getattr(record, k) for k in ACCESS_FIELDS if hasattr(record, k)}
        line: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "session_id": _session_id(record),
            "event": event,
            "message": record.getMessage(),
            "fields": fields,
        }
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        # default=str: a field that is not JSON (an exception, a path) is its str().
        return self._redact(json.dumps(self._clean(line), default=str, ensure_ascii=False))

    def _clean(self, value: Any) -> Any:
        """Redacts every string before encoding: JSON escapes would hide a
        secret containing a quote or backslash from the final pass."""
        if isinstance(value, str):
            return self._redact(value)
        if isinstance(value, dict):
            return {k: self._clean(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self._clean(v) for v in value]
        return value


def make_handler(
    log_format: str, secrets: tuple[str, ...] = (), stream: TextIO | None = None
) -> logging.Handler:
    redact = Redactor(secrets)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter(redact) if log_format == "json" else TextFormatter(redact))
    return handler


def configure_logging(level: str, log_format: str, secrets: tuple[str, ...] = ()) -> None:
    """One stderr handler for the process, in the chosen format."""
    handler = make_handler(log_format, secrets)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # aioice logs every connectivity check at INFO.
    logging.getLogger("aioice").setLevel(logging.WARNING)
