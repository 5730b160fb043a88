"""A worker's attempts at a job: claiming it, and recording how the attempt ended.

A running job is owned through a lease: ``worker_id`` names the worker process
whose heartbeat (``app/jobs/workers.py``) keeps it alive, and ``claim`` names the
attempt. A copy of the message never starts a job whose lease is live; once the
owner's lease has expired, exactly one copy takes it over (one conditional
UPDATE). Every later write of an attempt names its claim, so an attempt that
lost its lease can no longer change the job.

These writes do not commit: ``app/jobs/durable.py`` commits them, retrying
through a database outage and grouping the writes of a process's threads; the
``many`` forms of ``start_attempt`` and ``succeed`` handle a whole group in a few
statements. Each transition also runs its job kind's hook (``app/jobs/kinds.py``)
in the same transaction, and logs one line. The transitions that start outside a
worker (new, requeued, cancelled) are in ``app/jobs/state.py``.
"""

from __future__ import annotations

import json
import logging
import time
import traceback as tb
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import (
    JSON,
    Integer,
    String,
    Text,
    case,
    cast,
    column,
    exists,
    insert,
    or_,
    select,
    update,
    values,
)

from app.db import clock, db, utcnow
from app.jobs import kinds
from app.jobs.errors import PermanentError
from app.jobs.state import MAX_MESSAGE_CHARS, MAX_TRACEBACK_CHARS, JobNotFound
from app.models import Job, JobAttempt, Worker
from app.text import made_storable, storable_json

logger = logging.getLogger(__name__)


class WorkerLost(Exception):
    """The worker running the job stopped (killed, or lost its lease) too often."""


class OutcomeNotRecorded(PermanentError):
    """The attempt ended, but the database refused to store how (an error no
    retry fixes): the job is failed with this instead, so that it does not stay
    ``running``. Not resent automatically: the attempt may have done its work."""


class AttemptFenced(PermanentError):
    """This attempt no longer owns its job (its lease expired and another attempt
    took over, or its process cannot renew its lease): it must not act outside
    the database. Its message is dead-lettered; the job belongs to the new owner."""


class MessageMismatch(PermanentError):
    """A message whose actor or arguments are not its job row's: the row is the truth."""


class ClaimFailed(PermanentError):
    """The database refused the job's claim with an error no retry fixes."""


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


# The claim of the attempt running in this thread (set by the JobState middleware).
current_claim: ContextVar[Claim | None] = ContextVar("current_claim", default=None)


def lease_is_live(now: datetime | None = None):
    """True while the job's worker has renewed its lease, by the database's clock
    (``app.db.clock``) unless ``now`` is given."""
    now = clock() if now is None else now
    return exists().where(Worker.id == Job.worker_id, Worker.expires_at > now)


def start_attempt(
    job_id: str,
    *,
    series: int,
    worker_id: str,
    token: str,
    actor: str | None = None,
    args: list | None = None,
) -> Claim | None:
    """Move the job to ``running``, owned by ``worker_id``, and open its next attempt.

    The row says what the job does: a message whose ``actor`` or ``args`` (when
    given) disagree with it claims nothing and raises MessageMismatch (a
    hand-crafted message cannot send another email, or fail another job).

    Returns the claim, or None when the message must not run: the job is
    finished, cancelled, running under a live lease, or was retried by hand since
    this message was sent (its ``series`` is stale). A ``running`` job whose
    lease expired (its worker died) is taken over; that counts as a retry, and
    a job whose workers keep dying fails with WorkerLost once its retries are
    spent, instead of killing worker after worker.

    This one conditional UPDATE is why no message can run a job twice: copies
    of a message (a relay's duplicate, a rescued job, a redelivery after a
    connection blip, a dead letter moved back) race for it; one changes the row.
    """
    [outcome] = _start_attempts(
        [((job_id,), {"series": series, "worker_id": worker_id, "token": token,
                      "actor": actor, "args": args})]
    )
    if isinstance(outcome, Exception):
        raise outcome
    return outcome


def _start_attempts(calls: list[tuple[tuple, dict]]) -> list:
    """``start_attempt`` for every call at once: one conditional UPDATE for all
    their jobs (the same conditions, row by row), so a group commit claims many
    jobs in a few statements. A job it did not claim is looked at on its own."""
    now = utcnow()
    wanted = values(
        column("id", String), column("series", Integer), column("token", String),
        column("worker", String), column("actor", String), column("args", String),
        name="wanted",
    ).data([
        (args[0], kw["series"], kw["token"], kw["worker_id"], kw.get("actor"),
         _args_text(kw.get("args")))
        for args, kw in calls
    ])
    wanted = wanted.cte("wanted")  # SQLite names a VALUES list's columns only in a CTE
    takeover = (Job.status == "running") & ~lease_is_live()
    rows = db.session.execute(
        update(Job)
        .where(
            Job.id == wanted.c.id,
            Job.series == wanted.c.series,
            wanted.c.actor.is_(None) | (Job.actor == wanted.c.actor),
            wanted.c.args.is_(None) | (cast(Job.args, Text) == wanted.c.args),
            or_(Job.status.in_(("queued", "retrying")), takeover),
        )
        .values(
            status="running",
            attempts=Job.attempts + 1,
            retries=case((Job.status == "running", Job.retries + 1), else_=Job.retries),
            worker_id=wanted.c.worker,
            claim=wanted.c.token,
            rescues=0,
            started_at=now,
            next_retry_at=None,
            finished_at=None,
        )
        .returning(Job.id, Job.actor, Job.attempts, Job.retries, Job.max_retries,
                   Job.published_at, Job.claim),
        execution_options={"synchronize_session": False},
    ).all()
    claimed = {row.id: Claim(row.id, row.actor, row.attempts, row.claim, row.retries,
                             row.max_retries, row.published_at) for row in rows}
    taken_over = [claim.job_id for claim in claimed.values() if claim.attempt > 1]
    if taken_over:
        # Only a takeover finds an attempt still open: its worker stopped mid-job.
        db.session.execute(
            update(JobAttempt)
            .where(JobAttempt.job_id.in_(taken_over), JobAttempt.outcome == "running")
            .values(outcome="interrupted", finished_at=now, error_message="the worker stopped"),
            execution_options={"synchronize_session": False},
        )
    if claimed:
        db.session.execute(
            insert(JobAttempt),
            [{"job_id": c.job_id, "attempt": c.attempt, "started_at": now}
             for c in claimed.values()],
        )
    results: list = []
    runnable: dict[str, list[str]] = {}
    for args, kw in calls:
        claim = claimed.get(args[0])
        if claim is None or claim.token != kw["token"]:
            try:
                results.append(_claimed_before(args[0], kw))
            except (JobNotFound, MessageMismatch) as refused:
                results.append(refused)
        elif claim.retries > claim.max_retries:
            error = WorkerLost(f"the worker running it stopped {claim.retries} time(s)")
            fail_attempt(claim, error, retry_at=None)
            results.append(None)
        else:
            runnable.setdefault(claim.actor, []).append(claim.job_id)
            _log(claim, "started")
            results.append(claim)
    for actor, job_ids in runnable.items():
        kinds.run_hook(actor, "claimed", *job_ids)
    return results


start_attempt.many = _start_attempts


def _claimed_before(job_id: str, call: dict) -> Claim | None:
    """No row changed: the job is not runnable, unless this very claim was
    committed by an earlier try whose commit reply was lost; or the message
    disagrees with the row."""
    token = call["token"]
    row = db.session.execute(
        select(Job.actor, Job.attempts, Job.retries, Job.max_retries, Job.published_at).where(
            Job.id == job_id, Job.claim == token, Job.status == "running"
        )
    ).first()
    if row is not None:
        return Claim(job_id, row.actor, row.attempts, token, row.retries, row.max_retries,
                     row.published_at)
    job = db.session.execute(select(Job.actor, Job.args).where(Job.id == job_id)).first()
    if job is None:
        raise JobNotFound(job_id)
    if call.get("actor") not in (None, job.actor) or (
        call.get("args") is not None and list(call["args"]) != job.args
    ):
        raise MessageMismatch(f"the message for job {job_id} names another actor or arguments")
    return None


def _args_text(args) -> str | None:
    """A job's arguments as its JSON column stores them (SQLAlchemy's json.dumps)."""
    return None if args is None else json.dumps(list(args))


def _owned(claim: Claim):
    return (Job.id == claim.job_id) & (Job.status == "running") & (Job.claim == claim.token)


def still_owns(claim: Claim):
    """A condition true while ``claim`` owns its job under a live lease: what an
    attempt checks immediately before an effect outside the database."""
    return exists().where(_owned(claim), lease_is_live())


def succeed(claim: Claim, result=None) -> None:
    _succeed_all([((claim, result), {})])


def _succeed_all(calls: list[tuple[tuple, dict]]) -> list:
    """``succeed`` for every call at once, in two statements for all of them."""
    now = utcnow()
    claims = [args[0] for args, _ in calls]
    results = [
        storable_json(args[1] if len(args) > 1 else kw.get("result")) for args, kw in calls
    ]
    owned = values(
        column("id", String), column("attempt", Integer), column("token", String),
        column("result", JSON), name="owned",
    ).data([(c.job_id, c.attempt, c.token, r) for c, r in zip(claims, results, strict=True)])
    owned = owned.cte("owned")
    db.session.execute(
        update(JobAttempt)
        .where(
            JobAttempt.job_id == owned.c.id,
            JobAttempt.attempt == owned.c.attempt,
            JobAttempt.outcome == "running",
        )
        .values(outcome="succeeded", finished_at=now),
        execution_options={"synchronize_session": False},
    )
    changed = set(
        db.session.scalars(
            update(Job)
            .where(Job.id == owned.c.id, Job.status == "running", Job.claim == owned.c.token)
            .values(
                status="succeeded",
                finished_at=now,
                progress=100,
                result=owned.c.result,
                error_type=None,
                error_message=None,
            )
            .returning(Job.id),
            execution_options={"synchronize_session": False},
        )
    )
    # What an attempt did is true even if it lost the job meanwhile (an email
    # that went out was sent): the kind's hook runs either way.
    by_actor: dict[str, list[str]] = {}
    for claim in claims:
        by_actor.setdefault(claim.actor, []).append(claim.job_id)
        ok = claim.job_id in changed
        _log(claim, "succeeded" if ok else "succeeded, but its lease was taken over")
    for actor, job_ids in by_actor.items():
        kinds.run_hook(actor, "succeeded", *job_ids)
    return [None] * len(calls)


succeed.many = _succeed_all


def fail_attempt(claim: Claim, error: BaseException, *, retry_at: datetime | None) -> None:
    """Record a failed attempt; the job goes to ``retrying`` until ``retry_at``,
    or to ``failed`` when there is none (and its kind's ``given_up`` hook runs)."""
    now = utcnow()
    error_type, message, trace = describe(error)
    _close_attempt(
        claim,
        outcome="failed",
        finished_at=now,
        error_type=error_type,
        error_message=message,
        traceback=trace,
    )
    if retry_at is None:
        status = {"status": "failed", "finished_at": now}
    else:
        status = {"status": "retrying", "next_retry_at": retry_at, "retries": Job.retries + 1}
    changed = db.session.execute(
        update(Job)
        .where(_owned(claim))
        .values(error_type=error_type, error_message=message, **status)
    ).rowcount
    if changed and retry_at is None:
        kinds.run_hook(claim.actor, "given_up", claim.job_id)
    outcome = "failed" if retry_at is None else f"will retry at {retry_at.isoformat()}"
    _log(claim, f"{outcome}: {error_type}" if changed else "failed, but its lease was taken over")


def fail_unrecorded(claim: Claim, error: BaseException, *, hooks: bool = True) -> None:
    """The outcome write of ``claim`` raised ``error``, which no retry fixes:
    fail the job with OutcomeNotRecorded and a text that can always be stored,
    so that it leaves ``running`` and says why. Without ``hooks``, the kind's
    ``given_up`` hook is skipped (it may be what failed)."""
    failure = OutcomeNotRecorded(
        f"the attempt ended, but recording its outcome failed: {type(error).__name__}: {error}"
    )
    failure.__cause__ = error
    now = utcnow()
    error_type, message, trace = describe(failure)
    _close_attempt(claim, outcome="failed", finished_at=now, error_type=error_type,
                   error_message=message, traceback=trace)
    changed = db.session.execute(
        update(Job)
        .where(_owned(claim))
        .values(status="failed", finished_at=now, error_type=error_type, error_message=message)
    ).rowcount
    if changed and hooks:
        kinds.run_hook(claim.actor, "given_up", claim.job_id)
    _log(claim, f"failed: {error_type}" if changed else "failed, but its lease was taken over")


def fail_unclaimable(job_id: str, error: BaseException) -> None:
    """Claiming the job raised ``error``, which no retry fixes: fail it with
    ClaimFailed, where a claim would have found it, so that it says why."""
    now = utcnow()
    error_type, message, _ = describe(
        ClaimFailed(f"the job could not be claimed: {type(error).__name__}: {error}")
    )
    claimable = Job.status.in_(("queued", "retrying")) | (
        (Job.status == "running") & ~lease_is_live()
    )
    actor = db.session.execute(
        update(Job)
        .where(Job.id == job_id, claimable)
        .values(status="failed", finished_at=now, next_retry_at=None, error_type=error_type,
                error_message=message)
        .returning(Job.actor)
    ).scalar()
    if actor is None:
        return
    db.session.execute(
        update(JobAttempt)
        .where(JobAttempt.job_id == job_id, JobAttempt.outcome == "running")
        .values(outcome="interrupted", finished_at=now, error_message="the worker stopped")
    )
    kinds.run_hook(actor, "given_up", job_id)
    logger.info("job %s (%s) failed: %s", job_id, actor, message)


def describe(error: BaseException) -> tuple[str, str, str]:
    """An error's type, message and traceback, as they can always be stored."""
    return (
        made_storable(type(error).__name__, MAX_ERROR_TYPE_CHARS),
        made_storable(str(error), MAX_MESSAGE_CHARS),
        made_storable("".join(tb.format_exception(error))[-MAX_TRACEBACK_CHARS:]),
    )


def set_progress(claim: Claim, progress: int) -> None:
    db.session.execute(
        update(Job).where(_owned(claim)).values(progress=max(0, min(100, progress)))
    )


def _close_attempt(claim: Claim, **values) -> None:
    db.session.execute(
        update(JobAttempt)
        .where(
            JobAttempt.job_id == claim.job_id,
            JobAttempt.attempt == claim.attempt,
            JobAttempt.outcome == "running",
        )
        .values(**values)
    )


def _log(claim: Claim, outcome: str) -> None:
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
