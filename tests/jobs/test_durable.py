"""app/jobs/durable.py: group commit, error isolation, waiting out an outage."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import event, text
from sqlalchemy.exc import IntegrityError, OperationalError

from app.db import db
from app.jobs import durable


@pytest.fixture()
def table(app):
    with app.app_context():
        db.session.execute(text("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)"))
        db.session.commit()
    return app


def _insert(key: int):
    db.session.execute(text("INSERT INTO t (k, v) VALUES (:k, 'x')"), {"k": key})
    return key


def _rows(app) -> list[int]:
    with app.app_context():
        return db.session.execute(text("SELECT k FROM t ORDER BY k")).scalars().all()


def test_writes_waiting_together_are_committed_in_one_transaction(table):
    app = table
    commits = []
    gate = threading.Event()

    def first():
        gate.wait(10)  # holds the writer while the others queue up
        return _insert(0)

    with app.app_context():
        event.listen(db.engine, "commit", lambda conn: commits.append(1))
    results = {}

    def run(key, change, *args):
        with app.app_context():
            results[key] = durable.write(change, *args)

    threads = [threading.Thread(target=run, args=(0, first))]
    threads[0].start()
    time.sleep(0.2)
    threads += [threading.Thread(target=run, args=(k, _insert, k)) for k in range(1, 9)]
    for thread in threads[1:]:
        thread.start()
    with app.app_context():
        writer = app.extensions["job_state_writer"]
    while writer.queue.qsize() < 8:
        time.sleep(0.01)
    gate.set()
    for thread in threads:
        thread.join(10)

    assert results == {k: k for k in range(9)}
    assert _rows(app) == list(range(9))
    assert len(commits) == 2  # the first write, then the eight that waited


def test_an_error_no_retry_fixes_reaches_its_own_caller_only(table):
    app = table
    with app.app_context():
        durable.write(_insert, 1)
    errors, results = {}, {}
    gate = threading.Event()

    def blocker():
        gate.wait(10)
        return _insert(10)

    def run(key, change, *args):
        with app.app_context():
            try:
                results[key] = durable.write(change, *args)
            except Exception as error:
                errors[key] = error

    threads = [threading.Thread(target=run, args=(10, blocker))]
    threads[0].start()
    time.sleep(0.2)
    # a duplicate key, between two good writes, in one batch
    threads += [threading.Thread(target=run, args=(k, _insert, k)) for k in (2, 1, 3)]
    for thread in threads[1:]:
        thread.start()
        time.sleep(0.05)
    gate.set()
    for thread in threads:
        thread.join(10)

    assert set(errors) == {1} and isinstance(errors[1], IntegrityError)
    assert results == {10: 10, 2: 2, 3: 3}
    assert _rows(app) == [1, 2, 3, 10]


def test_a_transient_error_is_waited_out_and_the_write_committed_once(table):
    app = table
    tries = []

    def flaky():
        tries.append(1)
        if len(tries) < 3:
            raise OperationalError("INSERT", {}, Exception("server closed the connection"))
        return _insert(7)

    with app.app_context():
        assert durable.write(flaky) == 7
    assert (len(tries), _rows(app)) == (3, [7])
