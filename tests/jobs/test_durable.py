"""app/jobs/durable.py: group commit, error isolation, waiting out an outage."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import event, text
from sqlalchemy.exc import DataError, IntegrityError, InternalError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from app import create_app
from app.db import db
from app.jobs import durable
from app.jobs.writes import Write, one_at_a_time


@pytest.fixture()
def table(app):
    with app.app_context():
        db.session.execute(text("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)"))
        db.session.commit()
    return app


def _insert(key: int):
    db.session.execute(text("INSERT INTO t (k, v) VALUES (:k, 'x')"), {"k": key})
    return key


INSERT = one_at_a_time(_insert)


def _without_request(change) -> Write:
    return one_at_a_time(lambda _request: change())


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
        writer_engine = durable._writer(app).engine
    event.listen(writer_engine, "commit", lambda conn: commits.append(1))
    results = {}

    def run(key, change, request=None):
        with app.app_context():
            results[key] = durable.write(change, request)

    threads = [threading.Thread(target=run, args=(0, _without_request(first)))]
    threads[0].start()
    time.sleep(0.2)
    threads += [threading.Thread(target=run, args=(k, INSERT, k)) for k in range(1, 9)]
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
        durable.write(INSERT, 1)
    errors, results = {}, {}
    gate = threading.Event()

    def blocker():
        gate.wait(10)
        return _insert(10)

    def run(key, change, request=None):
        with app.app_context():
            try:
                results[key] = durable.write(change, request)
            except Exception as error:
                errors[key] = error

    threads = [threading.Thread(target=run, args=(10, _without_request(blocker)))]
    threads[0].start()
    time.sleep(0.2)
    # a duplicate key, between two good writes, in one batch
    threads += [threading.Thread(target=run, args=(k, INSERT, k)) for k in (2, 1, 3)]
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
        assert durable.write(_without_request(flaky), None) == 7
    assert (len(tries), _rows(app)) == (3, [7])


class _PgError(Exception):
    def __init__(self, sqlstate: str):
        super().__init__(f"sqlstate {sqlstate}")
        self.sqlstate = sqlstate


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (InternalError("UPDATE", {}, _PgError("25006")), durable.ErrorKind.OUTAGE),  # read-only
        (OperationalError("UPDATE", {}, _PgError("57P01")), durable.ErrorKind.OUTAGE),
        (OperationalError("UPDATE", {}, _PgError("40P01")), durable.ErrorKind.OUTAGE),
        (PoolTimeout("every connection busy"), durable.ErrorKind.OUTAGE),
        (OperationalError("UPDATE", {}, _PgError("55P03")), durable.ErrorKind.STUCK),
        (OperationalError("UPDATE", {}, _PgError("57014")), durable.ErrorKind.STUCK),
        (DataError("UPDATE", {}, _PgError("22021")), durable.ErrorKind.PERMANENT),  # a NUL
        (IntegrityError("INSERT", {}, _PgError("23505")), durable.ErrorKind.PERMANENT),
        (UnicodeEncodeError("utf-8", "\udc80", 0, 1, "surrogate"), durable.ErrorKind.PERMANENT),
    ],
)
def test_errors_are_sorted_into_outages_stuck_writes_and_the_rest(error, kind):
    assert durable.classify(error) is kind


def test_a_stuck_write_is_retried_on_its_own_while_the_others_commit(table):
    app = table
    tries, others = [], {}
    released = threading.Event()

    def stuck():
        tries.append(1)
        if not released.is_set():
            raise OperationalError("UPDATE", {}, _PgError("55P03"))
        return _insert(100)

    def run(key, change, request=None):
        with app.app_context():
            others[key] = durable.write(change, request)

    first = threading.Thread(target=run, args=(100, _without_request(stuck)))
    first.start()
    wait_for = time.monotonic() + 10
    while not tries and time.monotonic() < wait_for:
        time.sleep(0.01)
    threads = [threading.Thread(target=run, args=(k, INSERT, k)) for k in range(1, 4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert others == {1: 1, 2: 2, 3: 3}  # committed while the stuck one still waits
    assert first.is_alive()
    released.set()
    first.join(10)
    assert others[100] == 100 and _rows(app) == [1, 2, 3, 100]


def test_an_error_of_the_writer_itself_fails_the_batch_and_the_write_runs_again(table, monkeypatch):
    app = table
    run_all, failed = durable._run_all, []

    def faulty(batch):
        if not failed:
            failed.append(1)
            raise KeyboardInterrupt("not an Exception: no change's handler takes it")
        return run_all(batch)

    monkeypatch.setattr(durable, "_run_all", faulty)
    with app.app_context():
        assert durable.write(INSERT, 5) == 5
        assert durable.write(INSERT, 6) == 6  # the writer went on
    assert (failed, _rows(app)) == ([1], [5, 6])


def _limits(_request):
    return tuple(
        db.session.execute(
            text("SELECT current_setting('lock_timeout'), current_setting('statement_timeout')")
        ).one()
    )


@pytest.mark.postgres
def test_every_write_on_postgresql_bounds_its_waits_and_no_other_connection_does(postgres):
    app = create_app({"DATABASE_URL": postgres.url()})
    with app.app_context():
        # Each transaction of the writer, the first and the next, has the limits
        limited = (
            f"{durable.LOCK_TIMEOUT_MS // 1000}s",
            f"{durable.STATEMENT_TIMEOUT_MS // 1000}s",
        )
        assert durable.write(one_at_a_time(_limits), None) == limited
        assert durable.write(one_at_a_time(_limits), None) == limited
        # and the app's own connections have none
        assert _limits(None) == ("0", "0")
        db.session.rollback()
        durable._writer(app).engine.dispose()
        db.engine.dispose()
