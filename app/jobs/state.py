"""Every write of a job's state goes through this module.

Each transition is one conditional UPDATE that names the state it expects, so a
stale or duplicate message can never move a job backwards: the row only changes
when it is where the caller thought it was. Each function commits at once, so
the web sees a state as soon as it happens.
"""

from __future__ import annotations

import traceback as tb
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import select, update

from app.db import db, utcnow
from app.models import Job, JobAttempt, new_id

# Keep stored error texts readable and bounded.
MAX_MESSAGE_CHARS = 2000
MAX_TRACEBACK_CHARS = 20000


class JobNotFound(LookupError):
    """A message names a job that has no row: nothing can ever run it."""


class JobStateConflict(Exception):
    """The job is not in a state that allows the change (RQ's requeue idiom)."""

    def __init__(self, job_id: str, status: str | None):
        super().__init__(f"job {job_id} is {status}")
        self.job_id, self.status = job_id, status


RETRYABLE = ("failed", "cancelled")
CANCELLABLE = ("queued", "retrying", "failed")


# Per actor, what else must change in the same transaction when its job fails
# for good or is cancelled (an export becomes ``failed``), and when it is retried
# by hand (the export is ``queued`` again). Registered by the owning module.
_given_up_handlers: dict[str, Callable[[str], None]] = {}
_requeued_handlers: dict[str, Callable[[str], None]] = {}


def on_given_up(actor: str):
    def register(handler: Callable[[str], None]):
        _given_up_handlers[actor] = handler
        return handler

    return register


def on_requeued(actor: str):
    def register(handler: Callable[[str], None]):
        _requeued_handlers[actor] = handler
        return handler

    return register


def new_job(*, actor: str, queue: str, args: list, max_retries: int, user_id=None) -> Job:
    """A queued job, added to the session; the caller commits and publishes it
    with ``outbox.commit_and_publish``."""
    job = Job(
        id=new_id(),
        actor=actor,
        queue=queue,
        args=args,
        max_retries=max_retries,
        user_id=user_id,
        status="queued",
        series=0,
        created_at=utcnow(),
    )
    db.session.add(job)
    return job


def start_attempt(job_id: str, *, series: int = 0, redelivered: bool) -> int | None:
    """Move the job to ``running`` and open its next attempt.

    Returns the attempt number, or None when the message must not run: the job
    is finished, cancelled, already running elsewhere, or was retried by hand
    since this message was sent (its ``series`` is stale). A job found
    ``running`` is taken over only when the broker says the message was
    redelivered, which RabbitMQ does only after the consumer that held it died.

    This one conditional UPDATE is why no message can run a job twice: two
    copies of a message (a relay's duplicate, a rescued job, a dead letter moved
    back by an operator) race for it, and only one changes the row.
    """
    allowed = ["queued", "retrying"] + (["running"] if redelivered else [])
    now = utcnow()
    attempt = db.session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status.in_(allowed), Job.series == series)
        .values(
            status="running",
            attempts=Job.attempts + 1,
            started_at=now,
            next_retry_at=None,
            finished_at=None,
        )
        .returning(Job.attempts)
    ).scalar()
    if attempt is None:
        exists = db.session.execute(select(Job.id).where(Job.id == job_id)).scalar()
        db.session.rollback()
        if exists is None:
            raise JobNotFound(job_id)
        return None
    if redelivered:
        # Only a redelivery can find an attempt still open: its worker died mid-job.
        db.session.execute(
            update(JobAttempt)
            .where(JobAttempt.job_id == job_id, JobAttempt.outcome == "running")
            .values(outcome="interrupted", finished_at=now, error_message="the worker stopped")
        )
    db.session.add(JobAttempt(job_id=job_id, attempt=attempt, started_at=now))
    db.session.commit()
    return attempt


def succeed(job_id: str, attempt: int, result=None) -> None:
    db.session.rollback()
    now = utcnow()
    _close_attempt(job_id, attempt, outcome="succeeded", finished_at=now)
    db.session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == "running", Job.attempts == attempt)
        .values(
            status="succeeded",
            finished_at=now,
            progress=100,
            result=result,
            error_type=None,
            error_message=None,
        )
    )
    db.session.commit()


def fail_attempt(
    job_id: str, attempt: int, error: BaseException, *, retry_at: datetime | None
) -> None:
    """Record a failed attempt; the job goes to ``retrying`` until ``retry_at``,
    or to ``failed`` when there is none."""
    db.session.rollback()
    now = utcnow()
    error_type = type(error).__name__
    message = str(error)[:MAX_MESSAGE_CHARS]
    trace = "".join(tb.format_exception(error))[-MAX_TRACEBACK_CHARS:]
    _close_attempt(
        job_id,
        attempt,
        outcome="failed",
        finished_at=now,
        error_type=error_type,
        error_message=message,
        traceback=trace,
    )
    status = {"status": "retrying", "next_retry_at": retry_at}
    if retry_at is None:
        status = {"status": "failed", "finished_at": now}
    actor = db.session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == "running", Job.attempts == attempt)
        .values(error_type=error_type, error_message=message, **status)
        .returning(Job.actor)
    ).scalar()
    if retry_at is None and actor in _given_up_handlers:
        _given_up_handlers[actor](job_id)
    db.session.commit()


def fail_unrunnable(job_id: str, error: BaseException) -> None:
    """A message that can never run (its actor is unknown): fail its job, if any,
    without an attempt."""
    db.session.rollback()
    actor = db.session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status.in_(("queued", "retrying")))
        .values(
            status="failed",
            finished_at=utcnow(),
            error_type=type(error).__name__,
            error_message=str(error)[:MAX_MESSAGE_CHARS],
        )
        .returning(Job.actor)
    ).scalar()
    if actor in _given_up_handlers:
        _given_up_handlers[actor](job_id)
    db.session.commit()


def requeue(job_id: str) -> Job:
    """A failed or cancelled job goes back to ``queued`` as a new series of
    attempts, keeping its history; the caller publishes it (``outbox``).

    One conditional UPDATE: of two admins clicking Retry at once, or a click
    racing the scheduler, exactly one changes the row and publishes; the other
    gets JobStateConflict."""
    row = db.session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status.in_(RETRYABLE))
        .values(
            status="queued",
            series=Job.series + 1,
            published_at=None,
            progress=0,
            next_retry_at=None,
            finished_at=None,
        )
        .returning(Job.series, Job.actor)
    ).first()
    if row is None:
        _conflict(job_id)
    if row.actor in _requeued_handlers:
        _requeued_handlers[row.actor](job_id)
    return db.session.get(Job, job_id, populate_existing=True)


def cancel(job_id: str) -> None:
    """queued, retrying or failed → cancelled; a message still in the broker is
    skipped when it arrives. The caller commits."""
    actor = db.session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status.in_(CANCELLABLE))
        .values(status="cancelled", finished_at=utcnow(), next_retry_at=None)
        .returning(Job.actor)
    ).scalar()
    if actor is None:
        _conflict(job_id)
    if actor in _given_up_handlers:
        _given_up_handlers[actor](job_id)


def _conflict(job_id: str):
    status = db.session.execute(select(Job.status).where(Job.id == job_id)).scalar()
    db.session.rollback()
    if status is None:
        raise JobNotFound(job_id)
    raise JobStateConflict(job_id, status)


def set_progress(job_id: str, progress: int) -> None:
    db.session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == "running")
        .values(progress=max(0, min(100, progress)))
    )
    db.session.commit()


def _close_attempt(job_id: str, attempt: int, **values) -> None:
    db.session.execute(
        update(JobAttempt)
        .where(
            JobAttempt.job_id == job_id,
            JobAttempt.attempt == attempt,
            JobAttempt.outcome == "running",
        )
        .values(**values)
    )


def mark_published(job_id: str) -> None:
    db.session.execute(
        update(Job)
        .where(Job.id == job_id, Job.published_at.is_(None))
        .values(published_at=utcnow())
    )
    db.session.commit()
