"""A worker's claim on a job, and the row writes that end an attempt.

A running job is owned through a lease: ``worker_id`` names the worker process
whose heartbeat (``app/jobs/workers.py``) keeps it alive, and ``claim`` names the
attempt. A copy of the message never starts a job whose lease is live; once the
owner's lease has expired, exactly one copy takes it over (one conditional
UPDATE). Every later write of an attempt names its claim, so an attempt that
lost its lease can no longer change the job.

The writes here are declared with their batch forms (``app/jobs/writes.py``) and
committed by ``app/jobs/durable.py``. How an attempt ended is decided and
recorded in ``app/jobs/outcomes.py``; the transitions that start outside a
worker (new, requeued, cancelled) are in ``app/jobs/state.py``. Each transition
runs its job kind's hook (``app/jobs/kinds.py``) in the same transaction, and
logs one line.
"""

from __future__ import annotations

import functools
import json
import logging
import time
import traceback as tb
from collections.abc import Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime
from typing import cast as typed_as

from sqlalchemy import (
    Integer,
    String,
    Table,
    Text,
    Update,
    bindparam,
    cast,
    exists,
    func,
    insert,
    literal,
    select,
    update,
)

from app.db import UTCDateTime, changed_rows, clock, db, dialect, utcnow
from app.error_groups import group_of
from app.jobs import kinds, pauses
from app.jobs.errors import PermanentError
from app.jobs.state import MAX_MESSAGE_CHARS, MAX_TRACEBACK_CHARS, JobNotFound
from app.jobs.writes import Write, batched
from app.list_params import Rows
from app.models import Job, JobAttempt, Worker
from app.states import CLAIMABLE, JobStatus
from app.text import made_storable

logger = logging.getLogger(__name__)


class WorkerLost(Exception):
    """The worker running the job stopped (killed, or lost its lease) too often."""


class AttemptFenced(PermanentError):
    """This attempt no longer owns its job (its lease expired and another attempt
    took over, or its process cannot renew its lease): it must not act outside
    the database. Its message is dead-lettered; the job belongs to the new owner."""


class MessageMismatch(PermanentError):
    """A message whose actor or arguments are not its job row's: the row is the truth."""


# Longest error type stored (the column holds 200).
MAX_ERROR_TYPE_CHARS = 200


@dataclass(frozen=True)
class Claim:
    """An attempt that owns its job: what its later writes name."""

    job_id: str
    actor: str
    attempt: int
    token: str
    retries: int
    max_retries: int
    published_at: datetime | None
    started: float = field(default_factory=time.monotonic)


@dataclass(frozen=True)
class StartAttempt:
    """A message's request to run its job in this worker process. ``actor`` and
    ``args``, when given, must be the job row's."""

    job_id: str
    series: int
    worker_id: str
    token: str
    actor: str | None = None
    args: Sequence | None = None


# The claim of the attempt running in this thread (set by the JobState middleware).
current_claim: ContextVar[Claim | None] = ContextVar("current_claim", default=None)


def lease_is_live(now: datetime | None = None):
    """True while the job's worker has renewed its lease, by the database's clock
    (``app.db.clock``) unless ``now`` is given."""
    now = clock() if now is None else now
    return exists().where(Worker.id == Job.worker_id, Worker.expires_at > now)


def _start_attempts(requests: Sequence[StartAttempt]) -> list[Claim | None | Exception]:
    """Move each job to ``running``, owned by its ``worker_id``, as its next
    attempt: one conditional UPDATE for all of them (the same conditions, row by
    row). A job it did not claim is looked at on its own (``_claim_alone``).

    The attempt lives in the job row (``attempts``, ``started_at``) until it
    ends otherwise than by succeeding: an attempt that succeeds, which most do,
    costs no row of its own (``Job.history``).

    The row says what the job does: a request whose ``actor`` or ``args`` disagree
    with it claims nothing and is answered MessageMismatch (a hand-crafted
    message cannot send another email, or fail another job); one for a job with
    no row, JobNotFound.

    Answers the claim, or None when the message must not run: the job is
    finished, cancelled, running under a live lease, or was retried by hand
    since this message was sent (its ``series`` is stale).

    This conditional UPDATE is why no message can run a job twice: copies of a
    message (a relay's duplicate, a rescued job, a redelivery after a connection
    blip, a dead letter moved back) race for it; one changes the row.
    """
    now = utcnow()
    name = dialect()
    data = [
        (r.job_id, r.series, r.token, r.worker_id, r.actor, _args_text(r.args)) for r in requests
    ]
    claimed_rows = db.session.execute(
        _claim_statement(name), WANTED.params(name, data) | {"now": now}
    ).all()
    claimed = {row.id: _claim_of(row) for row in claimed_rows}
    results: list[Claim | None | Exception] = []
    runnable: dict[str, list[str]] = {}
    for request in requests:
        claim = claimed.get(request.job_id)
        if claim is None or claim.token != request.token:
            try:
                claim = _claim_alone(request, now)
            except (JobNotFound, MessageMismatch) as refused:
                results.append(refused)
                continue
        if claim is None:
            results.append(None)
        elif claim.retries > claim.max_retries:
            error = WorkerLost(f"the worker running it stopped {claim.retries} time(s)")
            fail(claim, error, retry_at=None)
            results.append(None)
        else:
            runnable.setdefault(claim.actor, []).append(claim.job_id)
            log(claim, "started")
            results.append(claim)
    for actor, job_ids in runnable.items():
        kinds.of(actor).claimed(job_ids)
    return results


start_attempt: Write[StartAttempt, Claim | None] = batched(_start_attempts)

JOBS = typed_as(Table, Job.__table__)
CLAIM_COLUMNS = ("id", "actor", "attempts", "retries", "max_retries", "published_at", "claim")
# What a batch of claims asks for, one row per message.
WANTED = Rows(
    "wanted",
    {
        "id": String(),
        "series": Integer(),
        "token": String(),
        "worker": String(),
        "actor": String(),
        "args": Text(),
    },
)


@functools.cache
def _claim_statement(name: str) -> Update:
    """The claim of ``_start_attempts``, built once per dialect (Core, not the ORM's
    bulk UPDATE: nothing here needs the session's objects)."""
    wanted, jobs = WANTED.table(name), JOBS
    return (
        update(jobs)
        .where(
            jobs.c.id == wanted.c.id,
            jobs.c.series == wanted.c.series,
            wanted.c.actor.is_(None) | (jobs.c.actor == wanted.c.actor),
            wanted.c.args.is_(None) | (cast(jobs.c.args, Text) == wanted.c.args),
            jobs.c.status.in_([str(status) for status in CLAIMABLE]),
            pauses.not_paused(jobs.c.queue),
        )
        .values(
            status=JobStatus.RUNNING,
            attempts=jobs.c.attempts + 1,
            worker_id=wanted.c.worker,
            claim=wanted.c.token,
            rescues=0,
            started_at=bindparam("now", type_=UTCDateTime()),
            next_retry_at=None,
            finished_at=None,
        )
        .returning(*(jobs.c[column] for column in CLAIM_COLUMNS))
    )


def _claim_of(row) -> Claim:
    return Claim(
        row.id, row.actor, row.attempts, row.claim, row.retries, row.max_retries, row.published_at
    )


def _claim_alone(request: StartAttempt, now: datetime) -> Claim | None:
    """The request claimed nothing with the others: this very claim was
    committed by an earlier try whose commit reply was lost; or the job is
    ``running`` under an expired lease (its worker died) and is taken over; or
    the message disagrees with the row; or its queue is paused
    (``app/jobs/pauses.py``: the job is parked); or the job is not runnable."""
    row = db.session.execute(
        select(*(JOBS.c[column] for column in CLAIM_COLUMNS)).where(
            Job.id == request.job_id, Job.claim == request.token, Job.status == JobStatus.RUNNING
        )
    ).first()
    if row is not None:
        return _claim_of(row)
    job = db.session.execute(
        select(Job.actor, Job.args, Job.queue).where(Job.id == request.job_id)
    ).first()
    if job is None:
        raise JobNotFound(request.job_id)
    if request.actor not in (None, job.actor) or (
        request.args is not None and list(request.args) != job.args
    ):
        raise MessageMismatch(
            f"the message for job {request.job_id} names another actor or arguments"
        )
    if pauses.is_paused(job.queue):
        # No new attempt, not even a take-over; a waiting job waits in the database.
        if pauses.park(request.job_id, request.series):
            logger.info("job %s parked: queue %s is paused", request.job_id, job.queue)
        return None
    return _take_over(request, now)


def _take_over(request: StartAttempt, now: datetime) -> Claim | None:
    """Claim a ``running`` job whose lease expired, closing the attempt its
    worker left open as ``interrupted``. That counts as a retry, and a job whose
    workers keep dying fails with WorkerLost once its retries are spent, instead
    of killing worker after worker. The row is locked first, so that of two
    copies taking over at once one does, and the attempt it closes is the one
    that was running."""
    expired = (
        (Job.id == request.job_id)
        & (Job.series == request.series)
        & (Job.status == JobStatus.RUNNING)
        & ~lease_is_live()
    )
    left = db.session.execute(
        select(Job.attempts, Job.started_at).where(expired).with_for_update()
    ).first()
    if left is None:
        return None
    close_interrupted(request.job_id, left.attempts, left.started_at, now)
    row = db.session.execute(
        update(Job)
        .where(Job.id == request.job_id)
        .values(
            status=JobStatus.RUNNING,
            attempts=Job.attempts + 1,
            retries=Job.retries + 1,
            worker_id=request.worker_id,
            claim=request.token,
            rescues=0,
            started_at=now,
            next_retry_at=None,
            finished_at=None,
        )
        .returning(*(JOBS.c[column] for column in CLAIM_COLUMNS))
    ).one()
    return _claim_of(row)


def close_interrupted(
    job_id: str, attempt: int, started_at: datetime | None, now: datetime
) -> None:
    """Record the job's attempt ``attempt`` as interrupted: its worker stopped.
    A row of its own, unless the attempt opened one (as claims did before
    attempts lived in the job row), which is closed instead."""
    closed = changed_rows(
        update(JobAttempt)
        .where(JobAttempt.job_id == job_id, JobAttempt.outcome == JobStatus.RUNNING)
        .values(outcome="interrupted", finished_at=now, error_message=INTERRUPTED)
    )
    if not closed and attempt > 0:
        db.session.execute(
            insert(JobAttempt).values(
                job_id=job_id,
                attempt=attempt,
                started_at=started_at or now,
                finished_at=now,
                outcome="interrupted",
                error_message=INTERRUPTED,
            )
        )


INTERRUPTED = "the worker stopped"


def _args_text(args) -> str | None:
    """A job's arguments as its JSON column stores them (SQLAlchemy's json.dumps)."""
    return None if args is None else json.dumps(list(args))


def owned(claim: Claim):
    """The job row, while ``claim`` is its current attempt."""
    return (Job.id == claim.job_id) & (Job.status == JobStatus.RUNNING) & (Job.claim == claim.token)


def still_owns(name: str):
    """A condition true while a claim owns its job under a live lease: what an
    attempt checks immediately before an effect outside the database. For a
    statement built once per dialect (``name``); ``owning_params`` gives the
    claim."""
    now = func.now() if name == "postgresql" else bindparam("lease_now", type_=UTCDateTime())
    jobs, workers = JOBS, typed_as(Table, Worker.__table__)
    live = exists().where(workers.c.id == jobs.c.worker_id, workers.c.expires_at > now)
    return exists().where(
        jobs.c.id == bindparam("owned_job_id"),
        jobs.c.status == JobStatus.RUNNING,
        jobs.c.claim == bindparam("owned_token"),
        live,
    )


def owning_params(name: str, claim: Claim) -> dict:
    params = {"owned_job_id": claim.job_id, "owned_token": claim.token}
    return params if name == "postgresql" else params | {"lease_now": utcnow()}


def fail(
    claim: Claim,
    error: BaseException,
    *,
    retry_at: datetime | None,
    hooks: bool = True,
    ending: JobStatus | None = None,
) -> bool:
    """Record a failed attempt; the job goes to ``retrying`` until ``retry_at``,
    or to ``failed`` when there is none (``ending`` instead: ``cancelled`` for
    an attempt that stopped at a cancel), and its kind's ``given_up`` hook runs,
    unless ``hooks`` is false. False when the claim no longer owns the job."""
    now = utcnow()
    ending = ending or JobStatus.FAILED
    error_type, message, trace = describe(error)
    # The attempt's row, from the job row while the claim still owns it; what
    # an attempt that lost its job did is the new owner's to record.
    db.session.execute(
        insert(JobAttempt).from_select(
            FAILED_ATTEMPT_COLUMNS,
            select(
                Job.id,
                Job.attempts,
                Job.started_at,
                literal(now, UTCDateTime()),
                literal(str(ending)),
                literal(error_type),
                literal(message),
                literal(trace),
            ).where(owned(claim)),
        )
    )
    if retry_at is None:
        status = {"status": ending, "finished_at": now, "cancel_requested": False}
    else:
        status = {
            "status": JobStatus.RETRYING,
            "next_retry_at": retry_at,
            "retries": Job.retries + 1,
        }
    changed = changed_rows(
        update(Job)
        .where(owned(claim))
        .values(
            error_type=error_type,
            error_message=message,
            error_group=group_of(claim.actor, error_type, message),
            **status,
        )
    )
    if changed and retry_at is None and hooks:
        kinds.of(claim.actor).given_up([claim.job_id])
    outcome = str(ending) if retry_at is None else f"will retry at {retry_at.isoformat()}"
    log(claim, f"{outcome}: {error_type}" if changed else "failed, but its lease was taken over")
    return bool(changed)


def describe(error: BaseException) -> tuple[str, str, str]:
    """An error's type, message and traceback, as they can always be stored."""
    return (
        made_storable(type(error).__name__, MAX_ERROR_TYPE_CHARS),
        made_storable(str(error), MAX_MESSAGE_CHARS),
        made_storable("".join(tb.format_exception(error))[-MAX_TRACEBACK_CHARS:]),
    )


FAILED_ATTEMPT_COLUMNS = (
    "job_id",
    "attempt",
    "started_at",
    "finished_at",
    "outcome",
    "error_type",
    "error_message",
    "traceback",
)


def log(claim: Claim, outcome: str) -> None:
    duration = time.monotonic() - claim.started
    logger.info(
        "job %s (%s) attempt %d %s after %.3fs",
        claim.job_id,
        claim.actor,
        claim.attempt,
        outcome,
        duration,
        extra={
            "job_id": claim.job_id,
            "actor": claim.actor,
            "attempt": claim.attempt,
            "outcome": outcome,
            "duration_s": round(duration, 3),
        },
    )
