"""The database: one Flask-SQLAlchemy instance, a UTC timestamp type, and the
engine settings that keep SQLite and PostgreSQL well behaved under load."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from typing import cast as typed_as

from flask import has_request_context, request
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import (
    DateTime,
    Executable,
    Interval,
    MetaData,
    event,
    func,
    literal,
    select,
)
from sqlalchemy.engine import CursorResult, Engine, create_engine, make_url
from sqlalchemy.exc import InvalidatePoolError
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.pool import Pool
from sqlalchemy.types import TypeDecorator

if TYPE_CHECKING:
    from flask_sqlalchemy.model import Model as FlaskModel

# Seconds to wait for a connection or a lock before answering 503 rather than hanging.
CONNECT_TIMEOUT_S = 3
SQLITE_BUSY_TIMEOUT_MS = 15_000

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


def clock(engine: Engine | None = None, *, plus: timedelta = timedelta()):
    """Now (``plus`` a while), as a SQL expression on the database's clock: a
    lease written by one process and compared by another must be timed by one
    clock, or a process whose clock runs ahead takes over live leases. SQLite
    serves one machine, whose processes share a clock: there it is this process's."""
    if (engine or db.engine).dialect.name != "postgresql":
        return literal(utcnow() + plus, UTCDateTime())
    return func.now() + literal(plus, Interval()) if plus else func.now()


def database_now() -> datetime:
    """The database's time (see ``clock``), read in the current session."""
    if db.engine.dialect.name != "postgresql":
        return utcnow()
    return db.session.execute(select(func.now())).scalar_one().astimezone(UTC)


def read_without_transaction() -> None:
    """Run the session's next statements, until its next commit or rollback, each
    on its own, without a transaction (PostgreSQL): a read of one statement then
    costs one round trip, not three (BEGIN, the read, ROLLBACK). Call it before
    the transaction's first statement."""
    if dialect() == "postgresql":
        db.session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})


def changed_rows(statement: Executable) -> int:
    """Run an UPDATE or DELETE in the current session: how many rows it matched.
    (``Session.execute`` is typed as returning any ``Result``; for these
    statements it is a ``CursorResult``, which has the count.)"""
    return typed_as(CursorResult[Any], db.session.execute(statement)).rowcount


def dialect() -> str:
    """The name of the database's dialect: "postgresql" or "sqlite"."""
    return db.engine.dialect.name


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC timestamps on every backend (SQLite has no time zones)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime; use timezone-aware UTC times")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def as_utc(value: datetime | str | None) -> datetime | None:
    """A timestamp computed by a query (``min()`` over a ``CASE``, say), which
    comes back without its column's type on SQLite (a string, no zone): as a
    UTCDateTime column would read it."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return UTCDateTime().process_result_value(value, db.engine.dialect)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


db = SQLAlchemy(model_class=Base)

if TYPE_CHECKING:
    # What ``db.Model`` is at run time (Base plus Flask-SQLAlchemy's query
    # property and table naming), as a class a type checker can see: Flask-SQLAlchemy
    # builds ``db.Model`` dynamically, so models that subclass it are untyped.
    class Model(Base, FlaskModel):
        __abstract__ = True
else:
    Model = db.Model


# Connections a process's pool keeps open: enough for every thread that holds
# one at once (a web process's GUNICORN_THREADS; a worker's threads, its
# writer and its scheduler jobs), so that a busy process never opens and
# closes one per request. MAX_OVERFLOW more are opened for a burst, then closed
# (docs/operations.md sizes PostgreSQL's max_connections from these).
POOL_SIZE = 10
MAX_OVERFLOW = 5


def connection_settings(url: str) -> tuple[str, dict]:
    """The SQLAlchemy URL and engine options for ``DATABASE_URL``.

    A PostgreSQL URL may end in ``?prepare_threshold=N`` (psycopg's setting:
    prepare a statement on the server once it ran N times; default 5), or
    ``prepare_threshold=none`` for a pooler that cannot keep prepared
    statements (PgBouncer before 1.21 in transaction mode, or with
    ``max_prepared_statements = 0``). It is psycopg's, not libpq's, so it is
    taken out of the URL and given to psycopg."""
    if url.startswith("sqlite"):
        return url, {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}}
    if not url.startswith("postgresql"):
        return url, {"pool_pre_ping": True}
    parsed = make_url(url)
    connect_args: dict[str, Any] = {"connect_timeout": CONNECT_TIMEOUT_S}
    threshold = parsed.query.get("prepare_threshold")
    if threshold is not None:
        value = threshold if isinstance(threshold, str) else threshold[-1]
        connect_args["prepare_threshold"] = None if value.lower() == "none" else int(value)
        url = parsed.difference_update_query(["prepare_threshold"]).render_as_string(
            hide_password=False
        )
    return url, {
        "pool_size": POOL_SIZE,
        "max_overflow": MAX_OVERFLOW,
        "connect_args": connect_args,
    }


def bounded_engine(
    database_url: str,
    *,
    connections: int,
    statement_timeout_ms: int,
    lock_timeout_ms: int | None = None,
) -> Engine:
    """An engine of its own (``connections`` at most) whose every transaction on
    PostgreSQL bounds how long a statement may run and wait for a lock. The
    limits are set in the round trip of the transaction's BEGIN (``SET LOCAL``),
    so they cost nothing, never leak to another connection's user, and hold
    behind PgBouncer in transaction mode, which passes on no startup options."""
    url, options = connection_settings(database_url)
    if not url.startswith("postgresql"):
        return create_engine(url, **options)
    limits = {"statement_timeout": statement_timeout_ms, "lock_timeout": lock_timeout_ms}
    begin = "; ".join(
        ["BEGIN"] + [f"SET LOCAL {name} = '{ms}ms'" for name, ms in limits.items() if ms]
    )
    engine = create_engine(url, **options | {"pool_size": connections, "max_overflow": 0})

    @event.listens_for(engine, "connect")
    def _begin_by_hand(dbapi_connection, _record):
        # psycopg would send its own BEGIN before the first statement.
        dbapi_connection.autocommit = True

    @event.listens_for(engine, "begin")
    def _begin_with_limits(conn):
        conn.connection.dbapi_connection.execute(begin)  # no parameters: one message

    return engine


# A pooled connection idle longer than this is pinged before it is handed out
# (``_ping_if_idle``); one in steady use is not.
PING_AFTER_IDLE_S = 2.0


@event.listens_for(Pool, "checkin")
def _note_checkin(_dbapi_connection, record) -> None:
    record.info["idle_since"] = time.monotonic()


@event.listens_for(Pool, "checkout")
def _ping_if_idle(dbapi_connection, record, _proxy) -> None:
    """SQLAlchemy's ``pool_pre_ping``, for PostgreSQL connections that sat idle:
    it would cost a round trip per checkout (per web request and per batch of
    state writes) to find a connection that a busy process used a moment ago.
    One that died in use fails its statement, which invalidates the pool
    (``handle_error`` below; every caller answers or retries an outage)."""
    if not type(dbapi_connection).__module__.startswith("psycopg"):
        return
    idle_since = record.info.get("idle_since")
    if idle_since is None or time.monotonic() - idle_since < PING_AFTER_IDLE_S:
        return
    try:
        autocommit = dbapi_connection.autocommit
        dbapi_connection.autocommit = True
        try:
            dbapi_connection.execute("SELECT 1")
        finally:
            dbapi_connection.autocommit = autocommit
    except Exception as error:
        raise InvalidatePoolError(f"connection idle for a while is gone: {error}") from error


# A server that refuses writes for a while (a primary being demoted, a failover)
# or is shutting down: its connections are dropped like lost ones, so that the
# pool reconnects, perhaps to the new primary, and callers wait it out.
DISCONNECT_SQLSTATES = frozenset({"25006", "57P01", "57P02", "57P03"})


@event.listens_for(Engine, "handle_error")
def _read_only_is_a_disconnect(context):
    if getattr(context.original_exception, "sqlstate", None) in DISCONNECT_SQLSTATES:
        context.is_disconnect = True


@event.listens_for(Engine, "connect")
def _sqlite_on_connect(dbapi_connection, _record):
    if type(dbapi_connection).__module__ != "sqlite3":
        return
    # Let SQLAlchemy's "begin" event below issue BEGIN instead of the driver.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


@event.listens_for(Engine, "begin")
def _sqlite_begin(conn):
    """BEGIN IMMEDIATE takes SQLite's write lock up front, waiting up to the busy
    timeout for it. A deferred transaction that reads and then writes fails at
    once with "database is locked" when another writer got in between, and no
    busy timeout helps then. So writers begin IMMEDIATE, and readers DEFERRED,
    which in WAL mode never waits for or blocks a writer: the requests that
    cannot change anything (GET, HEAD, OPTIONS), and long scans that say so with
    ``execution_options(sqlite_begin="DEFERRED")``."""
    if conn.dialect.name != "sqlite":
        return
    mode = conn.get_execution_options().get("sqlite_begin")
    if mode is None:
        mode = "DEFERRED" if _in_safe_request() else "IMMEDIATE"
    conn.exec_driver_sql(f"BEGIN {mode}")


def _in_safe_request() -> bool:
    return has_request_context() and request.method in ("GET", "HEAD", "OPTIONS")
