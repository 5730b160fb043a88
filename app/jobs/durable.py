"""The one place where a worker process writes job state.

Dramatiq only logs an exception raised in a middleware hook, then acks the
message (or publishes its retry) as if the hook had succeeded. So a state write
that meets an unreachable database must not raise: ``write`` retries it until it
is committed. Meanwhile the worker thread holds its message unacked; with every
thread waiting, the process takes no new work (RabbitMQ's prefetch limit stops
deliveries), and if the process dies RabbitMQ hands the messages to another
worker. Nothing is acted on before it is durable.

Group commit: one writer thread per process (per app) takes the writes of all
its worker threads and commits those that are waiting together, in one
transaction. Each caller still waits until its own write is committed, so what
is guaranteed does not change; what changes is that 16 threads cost one commit
(one fsync on the database server) instead of 16. A change that raises an error
waiting cannot fix (a constraint, a bad statement) makes the writer commit that
batch's changes one by one instead, so the error reaches its own caller only.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from flask import current_app
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from app.db import db

logger = logging.getLogger(__name__)

T = TypeVar("T")

FIRST_DELAY_S = 0.05
MAX_DELAY_S = 2.0
# Writes committed in one transaction at most; more wait for the next one.
MAX_BATCH = 64


def write(change: Callable[..., T], *args, **kwargs) -> T:
    """Run ``change`` in the process's writer and return its result once it is
    committed; on a transient database error it is run again, waiting longer
    each time (up to MAX_DELAY_S), until it commits.

    ``change`` must be safe to run again after a commit whose outcome was lost
    (a conditional UPDATE, or one that recognises its own earlier effect), and
    must not commit or roll back itself. The caller's own transaction (its
    reads) is ended first: on SQLite it may hold the lock the writer needs."""
    if db.session().in_transaction():
        db.session.rollback()
    app = current_app._get_current_object()
    writer = app.extensions.get("job_state_writer")
    if writer is None:
        with _starting:
            writer = app.extensions.get("job_state_writer")
            if writer is None:
                writer = app.extensions["job_state_writer"] = _Writer(app)
    return writer.submit(change, args, kwargs)


_starting = threading.Lock()


def transient(error: DBAPIError) -> bool:
    """A lost or refused connection, or SQLite's lock held past the busy timeout.
    (SQLite also calls a syntax error or a missing table an OperationalError.)"""
    if error.connection_invalidated or isinstance(error, InterfaceError):
        return True
    if not isinstance(error, OperationalError):
        return False
    if type(error.orig).__module__ == "sqlite3":
        return any(word in str(error.orig) for word in ("locked", "busy"))
    return True


class _Pending:
    __slots__ = ("args", "change", "done", "error", "kwargs", "result")

    def __init__(self, change, args, kwargs):
        self.change, self.args, self.kwargs = change, args, kwargs
        self.result: Any = None
        self.error: BaseException | None = None
        self.done = threading.Event()

    def run(self):
        return self.change(*self.args, **self.kwargs)


class _NotTransient(Exception):
    """A change in a batch raised an error that no retry can fix."""


class _Writer:
    def __init__(self, app):
        self.app = app
        self.queue: queue.SimpleQueue[_Pending] = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._run, name="job-state-writer", daemon=True)
        self.thread.start()

    def submit(self, change, args, kwargs):
        pending = _Pending(change, args, kwargs)
        self.queue.put(pending)
        pending.done.wait()
        if pending.error is not None:
            raise pending.error
        return pending.result

    def _run(self) -> None:
        with self.app.app_context():
            while True:
                batch = [self.queue.get()]
                while len(batch) < MAX_BATCH:
                    try:
                        batch.append(self.queue.get_nowait())
                    except queue.Empty:
                        break
                try:
                    self._commit(batch)
                except _NotTransient:
                    for pending in batch:
                        self._commit([pending], alone=True)
                finally:
                    for pending in batch:
                        pending.done.set()

    def _commit(self, batch: list[_Pending], *, alone: bool = False) -> None:
        """Run the changes and commit them; retry the whole batch while the
        database is away. Alone, an error no retry fixes goes to its caller."""
        delay, failures = FIRST_DELAY_S, 0
        while True:
            try:
                _run_all(batch)
                db.session.commit()
                if failures:
                    logger.warning("database reachable again; %d state write(s) done", len(batch))
                return
            except DBAPIError as error:
                _rollback()
                if not transient(error):
                    if not alone:
                        raise _NotTransient() from error
                    batch[0].error = error
                    return
                failures += 1
                if failures == 1 or failures % 30 == 0:
                    logger.warning(
                        "database unavailable (%s); retrying %d state write(s) until written",
                        type(error.orig).__name__,
                        len(batch),
                    )
                time.sleep(delay)
                delay = min(delay * 2, MAX_DELAY_S)
            except Exception as error:
                _rollback()
                if not alone:
                    raise _NotTransient() from error
                batch[0].error = error
                return


def _run_all(batch: list[_Pending]) -> None:
    """Run the batch's changes. Calls of a change that has a ``many`` form
    (``attempts.start_attempt``, ``attempts.succeed``) run as one call of it, in a few
    statements for all of them; ``many`` returns one result per call, an
    exception standing for an error that call alone raised. Grouping may reorder
    writes of different threads; each is a conditional UPDATE on its own job, and
    a thread's next write waits for its last, so no two depend on their order."""
    for pending in batch:
        pending.result = pending.error = None
    groups: dict[Callable, list[_Pending]] = {}
    for pending in batch:
        groups.setdefault(pending.change, []).append(pending)
    for change, group in groups.items():
        many = getattr(change, "many", None)
        if many is None or len(group) == 1:
            for pending in group:
                pending.result = pending.run()
            continue
        outcomes = many([(pending.args, pending.kwargs) for pending in group])
        for pending, outcome in zip(group, outcomes, strict=True):
            if isinstance(outcome, Exception):
                pending.error = outcome
            else:
                pending.result = outcome


def _rollback() -> None:
    try:
        db.session.rollback()
    except DBAPIError:
        db.session.close()
