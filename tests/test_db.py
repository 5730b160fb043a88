"""app/db.py: SQLite transactions (readers never wait for the write lock) and the
connection settings."""

from __future__ import annotations

import sqlite3

from app.db import MAX_OVERFLOW, POOL_SIZE, connection_settings, db


def test_get_requests_read_while_another_process_holds_the_write_lock(app, client, user):
    # Given another connection holding SQLite's write lock
    path = app.config["DATABASE_URL"].removeprefix("sqlite:///")
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    try:
        # Then reading pages and the API answers at once (a deferred transaction
        # in WAL mode), where BEGIN IMMEDIATE would wait out the busy timeout
        assert client.get("/api/jobs", headers=user[1]).status_code == 200
        assert client.get("/healthz").status_code == 200
    finally:
        writer.rollback()
        writer.close()


def test_writes_outside_requests_take_the_write_lock_up_front(app):
    with app.app_context():
        connection = db.session.connection()
        assert connection.exec_driver_sql("PRAGMA main.journal_mode").scalar() == "wal"
        # An IMMEDIATE transaction holds the lock: another writer cannot begin.
        other = sqlite3.connect(app.config["DATABASE_URL"].removeprefix("sqlite:///"), timeout=0)
        try:
            other.execute("BEGIN IMMEDIATE")
            raise AssertionError("a second writer got the lock")
        except sqlite3.OperationalError as error:
            assert "locked" in str(error)
        finally:
            other.close()
            db.session.rollback()


def test_prepare_threshold_in_the_url_goes_to_psycopg_not_to_libpq():
    url, options = connection_settings(
        "postgresql+psycopg://u:p%40w@db:6432/app?prepare_threshold=none&sslmode=require"
    )
    assert url == "postgresql+psycopg://u:p%40w@db:6432/app?sslmode=require"
    assert options["connect_args"]["prepare_threshold"] is None
    _, options = connection_settings("postgresql+psycopg://u@db/app?prepare_threshold=2")
    assert options["connect_args"]["prepare_threshold"] == 2
    _, options = connection_settings("postgresql+psycopg://u@db/app")
    assert "prepare_threshold" not in options["connect_args"]
    assert (options["pool_size"], options["max_overflow"]) == (POOL_SIZE, MAX_OVERFLOW)
