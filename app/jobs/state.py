"""Every write of a job's state goes through this module or its worker half,
``app/jobs/attempts.py`` (claiming a job and recording how an attempt ended).

Each transition is one conditional UPDATE that names the state it expects, so a
stale or duplicate message can never move a job backwards: the row only changes
when it is where the caller thought it was. Each also runs its job kind's hook
(``app/jobs/kinds.py``) in the same transaction, and logs one line.

Here: a new job, a job retried or cancelled by hand (committed by their caller
with the outbox), and a message that can never run. When a job is handed to the
broker is the outbox's to write (``published_at``, ``app/jobs/outbox.py``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, NoReturn

from sqlalchemy import (
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from app.db import db, utcnow
from app.jobs import kinds, outbox
from app.jobs.kinds import JobKind
from app.jobs.writes import Write, one_at_a_time
from app.models import Job, new_id
from app.states import CANCELLABLE, CLAIMABLE, RETRYABLE, JobStatus
from app.text import made_storable

logger = logging.getLogger(__name__)

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


def new_job_values(
    kind: JobKind, *, args: list, user_id: int | None = None, max_retries: int | None = None
) -> dict[str, Any]:
    """The column values of a queued job of ``kind``, for a multi-row INSERT
    (``outbox.insert_jobs``). Its retries come from its kind unless
    ``max_retries`` says otherwise."""
    return {
        "id": new_id(),
        "actor": kind.actor,
        "queue": kind.queue,
        "args": args,
        "max_retries": kind.max_retries if max_retries is None else max_retries,
        "user_id": user_id,
        "status": JobStatus.QUEUED,
        "series": 0,
        "retries": 0,
        "rescues": 0,
        "created_at": utcnow(),
    }


def new_job(kind: JobKind, *, args: list, user_id=None, max_retries: int | None = None) -> Job:
    """A queued job of ``kind`` (``new_job_values``), added to the session; the
    caller commits and publishes it with ``outbox.commit_and_publish``."""
    job = Job(**new_job_values(kind, args=args, user_id=user_id, max_retries=max_retries))
    db.session.add(job)
    return job


@dataclass(frozen=True)
class Unrunnable:
    """A message that can never run (its actor is unknown)."""

    job_id: str
    actor_name: str
    error: BaseException


def _fail_unrunnable(request: Unrunnable) -> None:
    """Fail the message's job, if any, without an attempt, when the row itself
    names that actor (a message naming another actor than its row's fails nothing)."""
    job_id, actor_name, error = request.job_id, request.actor_name, request.error
    actor = db.session.execute(
        update(Job)
        .where(Job.id == job_id, Job.actor == actor_name, Job.status.in_(CLAIMABLE))
        .values(
            status=JobStatus.FAILED,
            finished_at=utcnow(),
            error_type=made_storable(type(error).__name__, 200),
            error_message=made_storable(str(error), MAX_MESSAGE_CHARS),
        )
        .returning(Job.actor)
    ).scalar()
    if actor is not None:
        kinds.of(actor).given_up([job_id])
        logger.info("job %s (%s) failed: %s", job_id, actor, error)


fail_unrunnable: Write[Unrunnable, None] = one_at_a_time(_fail_unrunnable)


def requeue(job_id: str) -> Job:
    """A failed or cancelled job goes back to ``queued`` as a new series of
    attempts, keeping its history; the caller publishes it (``outbox``).

    One conditional UPDATE: of two admins clicking Retry at once, or a click
    racing the scheduler, exactly one changes the row and publishes; the other
    gets JobStateConflict. So does a job whose kind's ``requeued`` hook is
    refused by the database (an export, while the user has another unfinished)."""
    row = db.session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status.in_(RETRYABLE))
        .values(
            status=JobStatus.QUEUED,
            series=Job.series + 1,
            retries=0,
            rescues=0,
            progress=0,
            next_retry_at=None,
            finished_at=None,
            **outbox.left_to_relay(),
        )
        .returning(Job.series, Job.actor)
    ).first()
    if row is None:
        _conflict(job_id)
    try:
        kinds.of(row.actor).requeued([job_id])
    except IntegrityError:
        db.session.rollback()
        raise JobStateConflict(job_id, "blocked by another unfinished export") from None
    logger.info("job %s (%s) queued again as series %d", job_id, row.actor, row.series)
    return db.session.get_one(Job, job_id, populate_existing=True)


def cancel(job_id: str) -> None:
    """queued, retrying or failed → cancelled; a message still in the broker is
    skipped when it arrives. The caller commits."""
    actor = db.session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status.in_(CANCELLABLE))
        .values(status=JobStatus.CANCELLED, finished_at=utcnow(), next_retry_at=None)
        .returning(Job.actor)
    ).scalar()
    if actor is None:
        _conflict(job_id)
    kinds.of(actor).given_up([job_id])
    logger.info("job %s (%s) cancelled", job_id, actor)


def _conflict(job_id: str) -> NoReturn:
    status = db.session.execute(select(Job.status).where(Job.id == job_id)).scalar()
    db.session.rollback()
    if status is None:
        raise JobNotFound(job_id)
    raise JobStateConflict(job_id, status)
