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


# Per actor, what else must change in the same transaction when its job fails
# for good (an export becomes ``failed``). Registered by the owning module.
_given_up_handlers: dict[str, Callable[[str], None]] = {}


def on_given_up(actor: str):
    def register(handler: Callable[[str], None]):
        _given_up_handlers[actor] = handler
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
        created_at=utcnow(),
    )
    db.session.add(job)
    return job


def start_attempt(job_id: str, *, redelivered: bool) -> int | None:
    """Move the job to ``running`` and open its next attempt.

    Returns the attempt number, or None when the message must not run: the job
    is finished, cancelled, or already running elsewhere. A job found
    ``running`` is taken over only when the broker says the message was
    redelivered, which RabbitMQ does only after the consumer that held it died.
    """
    allowed = ["queued", "retrying"] + (["running"] if redelivered else [])
    now = utcnow()
    attempt = db.session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status.in_(allowed))
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
    # An attempt still open here belonged to a worker that died mid-job.
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
