"""Counts the SQL a process sends, client-side (pg_stat_statements cannot be
loaded on the benchmarks' server): every statement SQLAlchemy executes, by its
normalised text (an executemany is one statement), and every COMMIT and
ROLLBACK of a connection, each pool pre-ping. A thread writes the counts to ``DIR/<pid>.json``
every ``FLUSH_S`` and at exit; ``bench/costs.py`` sums the files.

The processes a benchmark starts load it through ``bench/sqlcount_site/
sitecustomize.py`` (``costs.Meter.env``); the benchmark process itself calls
``install``. Statements sent past SQLAlchemy (psycopg's COPY in exports) are
not seen.
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import json
import os
import re
import threading
from pathlib import Path

DIR_ENV = "BENCH_SQL_DIR"
FLUSH_S = 0.2
OTHER = "(other statements)"
PING = "SELECT 1 (pool pre-ping)"
# Transaction control, from SQLAlchemy's events: a BEGIN is psycopg's, sent before
# the transaction's first statement (none is sent for one that runs none).
CONTROL = ("BEGIN", "COMMIT", "ROLLBACK")
MAX_TEXTS = 500  # distinct texts kept per process; past that, counted as OTHER

_lock = threading.Lock()
_counts: collections.Counter = collections.Counter()
_normalised: dict[str, str] = {}
_dir: Path | None = None

_SUBSTITUTIONS = [
    (re.compile(r"\s+"), " "),
    (re.compile(r"'(?:[^']|'')*'"), "?"),
    (re.compile(r"%\(\w+\)s|%s|\$\d+|\b\d+\b"), "?"),
    (re.compile(r"\((?:\?(?:::\w+(?:\[\])?)?(?:, )?)+\)"), "(?…)"),  # a VALUES row, an IN list
    (re.compile(r"(\(\?…\))(?:, \(\?…\))+"), r"\1, …"),  # rows of any number
]


def normalise(statement: str) -> str:
    text = statement.strip()
    for pattern, replacement in _SUBSTITUTIONS:
        text = pattern.sub(replacement, text)
    return text


def _count(key: str) -> None:
    with _lock:
        if key not in _counts and len(_counts) >= MAX_TEXTS:
            key = OTHER
        _counts[key] += 1


def _before_cursor_execute(conn, cursor, statement, parameters, context, executemany):
    text = _normalised.get(statement)
    if text is None:
        text = normalise(statement)
        if len(_normalised) < 10_000:
            _normalised[statement] = text
    _count(text)


def _checkout(dbapi_connection, record, proxy) -> None:
    """The pool's pre-ping runs on the DBAPI cursor, past the statement events."""
    if getattr(getattr(proxy, "_pool", None), "_pre_ping", False):
        _count(PING)


def _flush() -> None:
    if _dir is None:
        return
    with _lock:
        data = {"pid": os.getpid(), "counts": dict(_counts)}
    path = _dir / f"{os.getpid()}.json"
    spare = path.with_suffix(".tmp")
    with contextlib.suppress(OSError):  # the benchmark has removed the directory
        spare.write_text(json.dumps(data))
        os.replace(spare, path)


def _flusher() -> None:
    written = None
    while True:
        threading.Event().wait(FLUSH_S)
        with _lock:
            total = sum(_counts.values())
        if total != written:
            _flush()
            written = total


def _start_flusher() -> None:
    threading.Thread(target=_flusher, name="bench-sqlcount", daemon=True).start()


def _after_fork() -> None:
    """A forked child (gunicorn's and dramatiq's workers) counts for itself
    (with a lock of its own: another thread may have held the parent's)."""
    global _lock
    _lock = threading.Lock()
    _counts.clear()
    _start_flusher()


def install(directory: str | os.PathLike) -> None:
    global _dir
    from sqlalchemy import event
    from sqlalchemy.engine import Engine
    from sqlalchemy.pool import Pool

    _dir = Path(directory)
    _dir.mkdir(parents=True, exist_ok=True)
    event.listen(Engine, "before_cursor_execute", _before_cursor_execute)
    event.listen(Pool, "checkout", _checkout)
    for name in CONTROL:
        event.listen(Engine, name.lower(), lambda conn, name=name: _count(name))
    os.register_at_fork(after_in_child=_after_fork)
    atexit.register(_flush)
    _start_flusher()


def read(directory: Path) -> collections.Counter:
    """The counts of every process that wrote to ``directory``, summed."""
    total: collections.Counter = collections.Counter()
    for path in directory.glob("*.json"):
        try:
            total.update(json.loads(path.read_text())["counts"])
        except (OSError, ValueError):
            continue  # replaced while read: os.replace makes that rare
    return total
