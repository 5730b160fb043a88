"""The one place where a worker process writes job state.

Dramatiq only logs an exception raised in a middleware hook, then acks the
message (or publishes its retry) as if the hook had succeeded. So a state write
that meets an unreachable database must not raise: ``write`` retries it, in a
transaction of its own, until it is committed. Meanwhile the worker thread holds
its message unacked; with every thread waiting, the process takes no new work
(RabbitMQ's prefetch limit stops deliveries), and if the process dies RabbitMQ
hands the messages to another worker. Nothing is acted on before it is durable.

Errors that waiting cannot fix (a constraint, a bad statement) still raise.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from app.db import db

logger = logging.getLogger(__name__)

T = TypeVar("T")

FIRST_DELAY_S = 0.05
MAX_DELAY_S = 2.0


def write(change: Callable[..., T], *args, **kwargs) -> T:
    """Run ``change`` and commit; on a transient database error roll back and
    run it again, waiting longer each time (up to MAX_DELAY_S), until it commits.

    ``change`` must be safe to run again after a commit whose outcome was lost
    (a conditional UPDATE, or one that recognises its own earlier effect)."""
    delay = FIRST_DELAY_S
    failures = 0
    while True:
        try:
            result = change(*args, **kwargs)
            db.session.commit()
            if failures:
                logger.warning("database reachable again; %s written", _name(change))
            return result
        except DBAPIError as error:
            _rollback()
            if not transient(error):
                raise
            failures += 1
            if failures == 1 or failures % 30 == 0:
                logger.warning(
                    "database unavailable (%s); retrying %s until it is written",
                    type(error.orig).__name__,
                    _name(change),
                )
            time.sleep(delay)
            delay = min(delay * 2, MAX_DELAY_S)


def transient(error: DBAPIError) -> bool:
    """A lost or refused connection, or SQLite's lock held past the busy timeout."""
    return (
        isinstance(error, OperationalError | InterfaceError) or error.connection_invalidated
    )


def _rollback() -> None:
    try:
        db.session.rollback()
    except DBAPIError:
        db.session.close()


def _name(change: Callable) -> str:
    return getattr(change, "__name__", repr(change))
