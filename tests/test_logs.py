"""app/logs.py: LOG_FORMAT=json gives one JSON object per line."""

from __future__ import annotations

import io
import json
import logging

import pytest

from app import create_app, logs


@pytest.fixture()
def root_handler():
    """A root handler of the test's own, as dramatiq or basicConfig would install."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(message)s"))
    root = logging.getLogger()
    saved = [(h, h.formatter) for h in root.handlers]  # pytest's own handlers too
    root.addHandler(handler)
    yield stream
    root.removeHandler(handler)
    for h, formatter in saved:
        h.setFormatter(formatter)


def _lines(stream) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_format_writes_one_object_per_line_with_extras_and_traceback(root_handler):
    logs.configure("json")
    log = logging.getLogger("jobsapp.test")

    log.warning("job %s failed\nsecond line", "j1", extra={"job_id": "j1", "attempt": 2})
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("with traceback")

    first, second = _lines(root_handler)
    assert (first["level"], first["logger"]) == ("WARNING", "jobsapp.test")
    assert first["message"] == "job j1 failed\nsecond line"
    assert (first["job_id"], first["attempt"]) == ("j1", 2)
    assert first["time"].endswith("+00:00")
    assert "ValueError: boom" in second["exception"]


def test_text_format_leaves_the_handlers_alone(root_handler):
    logs.configure("text")
    logging.getLogger("jobsapp.test").warning("plain")

    assert root_handler.getvalue() == "plain\n"


def test_create_app_follows_log_format(root_handler, tmp_path):
    create_app({"LOG_FORMAT": "json", "DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}"})
    logging.getLogger("jobsapp.test").warning("from the app")

    assert _lines(root_handler)[0]["message"] == "from the app"
