"""Log output for every process: dramatiq's, gunicorn's or Python's plain text by
default, or with ``LOG_FORMAT=json`` one JSON object per line for log shippers.

``configure`` is called by ``create_app``, so the web, each worker process (its
app is created at worker boot) and the scheduler all follow ``LOG_FORMAT``.
It re-formats the handlers the process already has (dramatiq's pipe to its main
process, the scheduler's stderr) rather than adding its own, so nothing is
logged twice. Gunicorn's own loggers are set up by ``deploy/gunicorn.conf.py``.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

# Attributes every LogRecord has; anything else was passed as ``extra=`` and is kept.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "process": record.process,
            "thread": record.threadName,
        }
        for name, value in vars(record).items():
            if name not in _STANDARD and not name.startswith("_"):
                entry[name] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def configure(log_format: str, *, level: int = logging.INFO) -> None:
    """Switch the process's root handlers to ``log_format``; text leaves them be."""
    if log_format != "json":
        return
    root = logging.getLogger()
    if not root.handlers:
        root.addHandler(logging.StreamHandler(sys.stderr))
        root.setLevel(level)
    for handler in root.handlers:
        if not isinstance(handler.formatter, JsonFormatter):
            handler.setFormatter(JsonFormatter())
