"""The one place where a worker process writes job state.

Dramatiq only logs an exception raised in a middleware hook, then acks the
message (or publishes its retry) as if the hook had succeeded. So a state write
that meets an unavailable database must not raise: ``write`` retries it until it
is committed. Meanwhile the worker thread holds its message unacked; with every
thread waiting, the process takes no new work (RabbitMQ's prefetch limit stops
deliveries), and if the process dies RabbitMQ hands the messages to another
worker. Nothing is acted on before it is durable.

What an error means decides what happens to the write (``classify``):

- an *outage* (a lost or refused connection, an exhausted pool, a server that is
  read-only during a failover or shutting down, a deadlock): the write is run
  again, waiting longer each time, until it commits;
- a *stuck* write (a row lock held past ``LOCK_TIMEOUT_MS`` by another session,
  a statement past ``STATEMENT_TIMEOUT_MS``): it is retried alone, in a lane of
  its own, so that it never holds up the writes of the process's other jobs;
- anything else (a constraint, a bad statement, a bug): no retry can fix it, and
  the error goes to that write's caller only, which records what it can
  (``app/jobs/middleware.py``).

Group commit: one writer thread per process (per app) takes the writes of all
its worker threads and commits those that are waiting together, in one
transaction, the requests of each write as one batch (``app/jobs/writes.py``).
Each caller still waits until its own write is committed, so what is guaranteed
does not change; what changes is that 16 threads cost one commit (one fsync on
the database server) instead of 16. A batch that meets an error of one write is
committed again one write at a time.

Every write a caller waits for ends with a result or an error: an error of the
writer itself (not of the change) fails the writes of its batch with
WriterFailed, is logged, and the writer goes on; ``write`` then runs the change
once more (changes are safe to run again). A writer thread that died anyway is
replaced by the next caller that finds it dead.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import queue
import threading
import time
from typing import Any, TypeVar

from flask import Flask, current_app
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session

from app.db import bounded_engine, db
from app.jobs.writes import Write

logger = logging.getLogger(__name__)

R = TypeVar("R")
T = TypeVar("T")

FIRST_DELAY_S = 0.05
MAX_DELAY_S = 2.0
# Writes committed in one transaction at most; more wait for the next one.
MAX_BATCH = 64
# PostgreSQL: how long one write may wait for a row lock, and run, before it is
# moved out of the way of the others (a state write takes milliseconds).
LOCK_TIMEOUT_MS = 2000
STATEMENT_TIMEOUT_MS = 10_000
# A batch takes at most a few statement timeouts, or waits for an outage to end.
STALLED_AFTER_S = 2 * STATEMENT_TIMEOUT_MS / 1000
# How often a caller waiting for its write checks that the writer is alive.
LIVENESS_CHECK_S = 1.0


class WriterFailed(Exception):
    """The writer itself failed while the write was in its batch."""


class ErrorKind(enum.Enum):
    OUTAGE = "outage"
    STUCK = "stuck"
    PERMANENT = "permanent"


# SQLSTATEs of errors that waiting fixes: read-only (a primary being demoted),
# serialization failures and deadlocks (run again), and the classes of lost
# connections (08), exhausted resources (53), shutdowns (57P) and system errors (58).
_OUTAGE_SQLSTATES = frozenset({"25006", "40001", "40P01"})
_OUTAGE_SQLSTATE_CLASSES = ("08", "53", "57P", "58")
# lock_not_available (lock_timeout) and query_canceled (statement_timeout).
_STUCK_SQLSTATES = frozenset({"55P03", "57014"})


def classify(error: BaseException) -> ErrorKind:
    if isinstance(error, PoolTimeout):  # every pooled connection busy: not a DBAPIError
        return ErrorKind.OUTAGE
    if not isinstance(error, DBAPIError):
        return ErrorKind.PERMANENT
    if error.connection_invalidated or isinstance(error, InterfaceError):
        return ErrorKind.OUTAGE
    sqlstate = getattr(error.orig, "sqlstate", None) or ""
    if sqlstate in _STUCK_SQLSTATES:
        return ErrorKind.STUCK
    if sqlstate in _OUTAGE_SQLSTATES or sqlstate.startswith(_OUTAGE_SQLSTATE_CLASSES):
        return ErrorKind.OUTAGE
    if type(error.orig).__module__ == "sqlite3":
        # SQLite also calls a syntax error or a missing table an OperationalError.
        words = ("locked", "busy", "readonly", "unable to open")
        return ErrorKind.OUTAGE if any(w in str(error.orig) for w in words) else ErrorKind.PERMANENT
    return ErrorKind.OUTAGE if isinstance(error, OperationalError) else ErrorKind.PERMANENT


def write(change: Write[R, T], request: R) -> T:
    """Run ``request`` through ``change`` in the process's writer and return its
    result once it is committed (see the module for what each kind of error does).

    The caller's own transaction (its reads) is ended first: on SQLite it may
    hold the lock the writer needs."""
    if db.session().in_transaction():
        db.session.rollback()
    # The app itself, not the proxy: the writer's threads push its context.
    app = current_app._get_current_object()  # type: ignore[attr-defined]  # a LocalProxy
    try:
        return _writer(app).submit(change, request)
    except WriterFailed:
        logger.warning("running %s again after the writer failed", change.name)
        return _writer(app).submit(change, request)


def stalled_for(app) -> float:
    """Seconds for which the writer has been busy with one batch: more than
    STALLED_AFTER_S means it is making no progress (a hung connection)."""
    writer = app.extensions.get("job_state_writer")
    return writer.stalled_for() if writer is not None else 0.0


_starting = threading.Lock()


def _writer(app) -> _Writer:
    writer = app.extensions.get("job_state_writer")
    if writer is None:
        with _starting:
            writer = app.extensions.get("job_state_writer")
            if writer is None:
                writer = app.extensions["job_state_writer"] = _Writer(app)
    return writer


class _Pending:
    __slots__ = ("change", "done", "error", "request", "result", "submitted")

    def __init__(self, change: Write, request):
        self.change, self.request = change, request
        self.result: Any = None
        self.error: BaseException | None = None
        self.done = threading.Event()
        self.submitted = time.monotonic()

    def finish(self, error: BaseException | None = None) -> None:
        if error is not None:
            self.error = error
        self.done.set()


class _Split(Exception):
    """A write in the batch raised an error that is its own: commit them one by one."""


class _Writer:
    """The main lane commits batches; a write that is stuck goes to the slow lane,
    which retries it alone until it commits."""

    def __init__(self, app: Flask):
        self.app = app
        self.engine = _writer_engine(app)
        self.queue: queue.SimpleQueue[_Pending] = queue.SimpleQueue()
        self.slow: queue.SimpleQueue[_Pending] = queue.SimpleQueue()
        self._in_flight: list[_Pending] = []
        self._batch_started = 0.0
        self._lock = threading.Lock()
        self.thread = self._start(self._run_main, "job-state-writer")
        self.slow_thread = self._start(self._run_slow, "job-state-writer-slow")

    def _start(self, target, name) -> threading.Thread:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        return thread

    def submit(self, change: Write, request):
        pending = _Pending(change, request)
        self.queue.put(pending)
        while not pending.done.wait(LIVENESS_CHECK_S):
            self._replace_dead_threads()
        if pending.error is not None:
            raise pending.error
        return pending.result

    def stalled_for(self) -> float:
        with self._lock:
            return time.monotonic() - self._batch_started if self._in_flight else 0.0

    @contextlib.contextmanager
    def _lane(self):
        """A lane's app context, whose ``db.session`` runs on the writer's engine."""
        with self.app.app_context():
            db.session.registry.set(Session(bind=self.engine))
            yield

    def _replace_dead_threads(self) -> None:
        with self._lock:
            if not self.thread.is_alive():
                logger.critical("the job-state writer thread died; starting a new one")
                for pending in self._in_flight:
                    pending.finish(WriterFailed("the writer thread died"))
                self._in_flight = []
                self.thread = self._start(self._run_main, "job-state-writer")
            if not self.slow_thread.is_alive():
                logger.critical("the slow job-state writer thread died; starting a new one")
                self.slow_thread = self._start(self._run_slow, "job-state-writer-slow")

    def _run_main(self) -> None:
        with self._lane():
            while True:
                batch = [self.queue.get()]
                while len(batch) < MAX_BATCH:
                    try:
                        batch.append(self.queue.get_nowait())
                    except queue.Empty:
                        break
                with self._lock:
                    self._in_flight, self._batch_started = batch, time.monotonic()
                try:
                    try:
                        self._commit(batch)
                    except _Split:
                        for pending in batch:
                            self._commit([pending], alone=True)
                except BaseException as error:  # the writer's own fault: never hang a caller
                    logger.critical("job-state writer failed; failing its batch", exc_info=True)
                    _rollback()
                    for pending in batch:
                        if not pending.done.is_set():
                            pending.finish(WriterFailed(f"{type(error).__name__}: {error}"))
                finally:
                    with self._lock:
                        self._in_flight = []

    def _run_slow(self) -> None:
        with self._lane():
            while True:
                pending = self.slow.get()
                try:
                    self._commit([pending], alone=True, slow=True)
                except BaseException as error:
                    logger.critical("slow job-state writer failed", exc_info=True)
                    _rollback()
                    pending.finish(WriterFailed(f"{type(error).__name__}: {error}"))

    def _commit(self, batch: list[_Pending], *, alone: bool = False, slow: bool = False) -> None:
        """Run the changes and commit them, retrying through an outage. Alone, an
        error that is the write's own goes to its caller, and a stuck write goes
        to the slow lane (or, in the slow lane, waits and is run again)."""
        delay, failures = FIRST_DELAY_S, 0
        while True:
            try:
                _run_all(batch)
                db.session.commit()
            except Exception as error:
                _rollback()
                kind = classify(error)
                if kind is ErrorKind.PERMANENT or (kind is ErrorKind.STUCK and not slow):
                    if not alone:
                        raise _Split() from error
                    if kind is ErrorKind.STUCK:
                        logger.warning(
                            "state write %s is stuck (%s); retrying it on its own",
                            batch[0].change.name,
                            _reason(error),
                        )
                        self.slow.put(batch[0])
                        return
                    batch[0].finish(error)
                    return
                failures += 1
                if failures == 1 or failures % 30 == 0:
                    logger.warning(
                        "database unavailable (%s); retrying %d state write(s) until written",
                        _reason(error),
                        len(batch),
                    )
                time.sleep(delay)
                delay = min(delay * 2, MAX_DELAY_S)
                continue
            if failures:
                logger.warning("database reachable again; %d state write(s) done", len(batch))
            for pending in batch:
                pending.finish()
            return


def _writer_engine(app: Flask) -> Engine:
    """The writer's own connections, one per lane, whose transactions bound their
    waits for locks and statements (LOCK_TIMEOUT_MS, STATEMENT_TIMEOUT_MS)."""
    return bounded_engine(
        app.config["DATABASE_URL"],
        connections=2,
        statement_timeout_ms=STATEMENT_TIMEOUT_MS,
        lock_timeout_ms=LOCK_TIMEOUT_MS,
    )


def _run_all(batch: list[_Pending]) -> None:
    """Run the batch's requests, those of one write as one batch of it. Grouping
    may reorder writes of different threads; each is a conditional UPDATE on its
    own job, and a thread's next write waits for its last, so no two depend on
    their order."""
    for pending in batch:
        pending.result = pending.error = None
    groups: dict[Write, list[_Pending]] = {}
    for pending in batch:
        groups.setdefault(pending.change, []).append(pending)
    for change, group in groups.items():
        outcomes = change.many([pending.request for pending in group])
        for pending, outcome in zip(group, outcomes, strict=True):
            if isinstance(outcome, Exception):
                pending.error = outcome
            else:
                pending.result = outcome


def _rollback() -> None:
    try:
        db.session.rollback()
    except Exception:
        db.session.close()


def _reason(error: BaseException) -> str:
    return type(getattr(error, "orig", None) or error).__name__
