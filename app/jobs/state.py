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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NoReturn

from sqlalchemy import RowMapping, select, update
from sqlalchemy.exc import IntegrityError

from app.db import db, dialect, utcnow
from app.error_groups import group_of
from app.jobs import kinds, outbox
from app.jobs.kinds import JobKind
from app.jobs.writes import Write, one_at_a_time
from app.list_params import one_of
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
        "scheduled_for": None,
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
    error_type = made_storable(type(error).__name__, 200)
    message = made_storable(str(error), MAX_MESSAGE_CHARS)
    actor = db.session.execute(
        update(Job)
        .where(Job.id == job_id, Job.actor == actor_name, Job.status.in_(CLAIMABLE))
        .values(
            status=JobStatus.FAILED,
            finished_at=utcnow(),
            error_type=error_type,
            error_message=message,
            error_group=group_of(actor_name, error_type, message),
        )
        .returning(Job.actor)
    ).scalar()
    if actor is not None:
        kinds.of(actor).given_up([job_id])
        logger.info("job %s (%s) failed: %s", job_id, actor, error)


fail_unrunnable: Write[Unrunnable, None] = one_at_a_time(_fail_unrunnable)


def queue_due(*, published_at: datetime, limit: int = 1000) -> list[RowMapping]:
    """``scheduled`` → ``queued`` for up to ``limit`` jobs whose ``scheduled_for``
    has come, oldest first, marked published ``at``; their
    ``outbox.MESSAGE_COLUMNS``. One conditional UPDATE: of two schedulers at
    once, one queues each job. The caller commits, then publishes."""
    due = (
        select(Job.id)
        .where(Job.status == JobStatus.SCHEDULED, Job.scheduled_for <= published_at)
        .order_by(Job.scheduled_for)
        .limit(limit)
    )
    return list(
        db.session.execute(
            update(Job)
            .where(Job.id.in_(due), Job.status == JobStatus.SCHEDULED)
            .values(status=JobStatus.QUEUED, published_at=published_at)
            .returning(*(getattr(Job, name) for name in outbox.MESSAGE_COLUMNS))
        ).mappings()
    )


def run_now(job_id: str, *, published_at: datetime) -> list[RowMapping]:
    """A scheduled job, queued now instead of when it is due, marked published
    ``at``; its ``outbox.MESSAGE_COLUMNS``, or none when it was not scheduled.
    The caller commits, then publishes."""
    return list(
        db.session.execute(
            update(Job)
            .where(Job.id == job_id, Job.status == JobStatus.SCHEDULED)
            .values(status=JobStatus.QUEUED, scheduled_for=published_at, published_at=published_at)
            .returning(*(getattr(Job, name) for name in outbox.MESSAGE_COLUMNS))
        ).mappings()
    )


def requeue(job_ids: Sequence[str], *, published_at: datetime | None) -> list[RowMapping]:
    """Failed or cancelled jobs go back to ``queued`` as a new series of attempts,
    keeping their history, marked published ``at`` (the caller commits, then
    publishes them: ``outbox.commit_then_publish``); returns the requeued jobs'
    ``outbox.MESSAGE_COLUMNS``. The others are skipped: moved on meanwhile, or
    refused by their kind's ``requeued`` hook (an export, while the user has
    another unfinished).

    One conditional UPDATE over all the ids: of two admins retrying the same
    jobs at once, or a click racing the scheduler, exactly one changes each row
    and publishes it. Should a hook refuse the batch, its jobs are tried one at
    a time, so that one refused export does not hold back the rest."""
    try:
        with db.session.begin_nested():
            return _requeue(job_ids, published_at)
    except IntegrityError:
        pass
    requeued: list[RowMapping] = []
    for job_id in job_ids:
        try:
            with db.session.begin_nested():
                requeued += _requeue([job_id], published_at)
        except IntegrityError:
            logger.info("job %s not queued again: blocked by another unfinished export", job_id)
    return requeued


def _requeue(job_ids: Sequence[str], published_at: datetime | None) -> list[RowMapping]:
    rows = (
        db.session.execute(
            update(Job)
            .where(one_of(dialect(), Job.id, job_ids), Job.status.in_(RETRYABLE))
            .values(
                status=JobStatus.QUEUED,
                series=Job.series + 1,
                retries=0,
                rescues=0,
                progress=0,
                next_retry_at=None,
                finished_at=None,
                published_at=published_at,
            )
            .returning(*(Job.__table__.c[name] for name in outbox.MESSAGE_COLUMNS))
        )
        .mappings()
        .all()
    )
    _each_kind(rows, JobKind.requeued)
    for row in rows:
        logger.info("job %s (%s) queued again as series %d", row["id"], row["actor"], row["series"])
    return list(rows)


def cancel(job_ids: Sequence[str]) -> list[str]:
    """queued, retrying or failed → cancelled, in one conditional UPDATE; a
    message still in the broker is skipped when it arrives. Returns the ids it
    cancelled (the others had moved on); the caller commits."""
    rows = (
        db.session.execute(
            update(Job)
            .where(one_of(dialect(), Job.id, job_ids), Job.status.in_(CANCELLABLE))
            .values(status=JobStatus.CANCELLED, finished_at=utcnow(), next_retry_at=None)
            .returning(Job.id, Job.actor)
        )
        .mappings()
        .all()
    )
    _each_kind(rows, JobKind.given_up)
    for row in rows:
        logger.info("job %s (%s) cancelled", row["id"], row["actor"])
    return [row["id"] for row in rows]


def request_cancel(job_id: str) -> bool:
    """Ask a running job whose kind can stop part way to stop at its next
    progress write; False when the job is not running or its kind cannot stop.
    The caller commits."""
    job = db.session.execute(select(Job.actor).where(Job.id == job_id)).first()
    if job is None or not kinds.of(job.actor).stops_when_cancelled:
        return False
    asked = db.session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == JobStatus.RUNNING)
        .values(cancel_requested=True)
    )
    if asked.rowcount:  # type: ignore[attr-defined]
        logger.info("job %s (%s): cancel requested while it runs", job_id, job.actor)
    return bool(asked.rowcount)  # type: ignore[attr-defined]


def _each_kind(rows: Sequence[RowMapping], hook: Callable[[JobKind, list[str]], None]) -> None:
    """Run a kind's hook once for each actor's jobs among ``rows``."""
    by_actor: dict[str, list[str]] = {}
    for row in rows:
        by_actor.setdefault(row["actor"], []).append(row["id"])
    for actor, ids in by_actor.items():
        hook(kinds.of(actor), ids)


def conflict(job_id: str) -> NoReturn:
    """Why a job was not changed: JobNotFound, or JobStateConflict with its status
    (its own status, when its kind's hook refused it)."""
    status = db.session.execute(select(Job.status).where(Job.id == job_id)).scalar()
    db.session.rollback()
    if status is None:
        raise JobNotFound(job_id)
    if status in RETRYABLE:
        raise JobStateConflict(job_id, "blocked by another unfinished export")
    raise JobStateConflict(job_id, status)
