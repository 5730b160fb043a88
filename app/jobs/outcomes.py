"""How an attempt ended: decided in one function, recorded in one write.

``decide`` takes what the actor did (a result or an error), the claim and the
retry policy, and answers one of three outcomes: succeeded; retry at a time;
failed for good. ``record`` writes it (``app/jobs/durable.py`` commits it) and
answers whether the attempt still owned its job: an attempt whose job was taken
over changes nothing, and its message is not retried. The JobState middleware
calls both, then does what the outcome asks of the message (publish its retry,
or dead-letter it); nothing else decides or records an outcome.

The fallbacks for a database that refuses an outcome or a claim for good are
here too: the job is failed with a text that can always be stored.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from dramatiq.common import compute_backoff
from sqlalchemy import String, Text, Update, bindparam, select, update

from app.db import UTCDateTime, db, dialect, utcnow
from app.error_groups import group_of
from app.jobs import kinds
from app.jobs.attempts import (
    JOBS,
    Claim,
    close_interrupted,
    describe,
    fail,
    lease_is_live,
    log,
    owned,
)
from app.jobs.errors import Cancelled, PermanentError
from app.jobs.writes import Write, batched, one_at_a_time
from app.list_params import Rows, json_from_text, json_text
from app.models import Job
from app.states import CLAIMABLE, JobStatus
from app.text import storable_json

logger = logging.getLogger(__name__)


class OutcomeNotRecorded(PermanentError):
    """The attempt ended, but the database refused to store how (an error no
    retry fixes): the job is failed with this instead, so that it does not stay
    ``running``. Not resent automatically: the attempt may have done its work."""


class ClaimFailed(PermanentError):
    """The database refused the job's claim with an error no retry fixes."""


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff between attempts, with jitter (Dramatiq's formula)."""

    min_backoff_ms: int
    max_backoff_ms: int

    @classmethod
    def from_config(cls, config) -> RetryPolicy:
        return cls(config["RETRY_MIN_BACKOFF_MS"], config["RETRY_MAX_BACKOFF_MS"])

    def backoff_ms(self, retry: int) -> int:
        """The wait before the ``retry``-th retry (1 for the first)."""
        _, backoff = compute_backoff(
            retry, factor=self.min_backoff_ms, max_backoff=self.max_backoff_ms
        )
        return int(backoff)


@dataclass(frozen=True)
class Outcome:
    claim: Claim
    status: JobStatus  # SUCCEEDED, RETRYING, FAILED or CANCELLED
    result: Any = None
    error: BaseException | None = None
    retry_at: datetime | None = None
    # How long the retry's message waits in the broker.
    delay_ms: int | None = None

    @classmethod
    def succeeded(cls, claim: Claim, result: Any = None) -> Outcome:
        return cls(claim, JobStatus.SUCCEEDED, result=result)

    @classmethod
    def failed(cls, claim: Claim, error: BaseException) -> Outcome:
        return cls(claim, JobStatus.FAILED, error=error)

    @classmethod
    def cancelled(cls, claim: Claim, error: Cancelled) -> Outcome:
        return cls(claim, JobStatus.CANCELLED, error=error)

    @classmethod
    def retry(cls, claim: Claim, error: BaseException, *, delay_ms: int) -> Outcome:
        at = utcnow() + timedelta(milliseconds=delay_ms)
        return cls(claim, JobStatus.RETRYING, error=error, retry_at=at, delay_ms=delay_ms)


def decide(
    claim: Claim, *, result: Any = None, error: BaseException | None, policy: RetryPolicy
) -> Outcome:
    if error is None:
        return Outcome.succeeded(claim, result)
    if isinstance(error, Cancelled):  # it stopped because its job was cancelled
        return Outcome.cancelled(claim, error)
    if isinstance(error, PermanentError):  # no retry can fix it
        return Outcome.failed(claim, error)
    if claim.retries >= claim.max_retries:
        return Outcome.failed(claim, error)
    return Outcome.retry(claim, error, delay_ms=policy.backoff_ms(claim.retries + 1))


def _record(outcomes: Sequence[Outcome]) -> list[bool]:
    """Write each outcome: successes in two statements for all of them, failures
    one by one. Answers, for each, whether its claim still owned the job."""
    successes = [o for o in outcomes if o.status is JobStatus.SUCCEEDED]
    still_owned = _succeed(successes) if successes else set()
    answers = []
    for outcome in outcomes:
        if outcome.status is JobStatus.SUCCEEDED:
            answers.append((outcome.claim.job_id, outcome.claim.token) in still_owned)
        else:
            assert outcome.error is not None
            ending = JobStatus.CANCELLED if outcome.status is JobStatus.CANCELLED else None
            answers.append(
                fail(outcome.claim, outcome.error, retry_at=outcome.retry_at, ending=ending)
            )
    return answers


record: Write[Outcome, bool] = batched(_record)


def _succeed(successes: Sequence[Outcome]) -> set[tuple[str, str | None]]:
    """The successes, in one statement: the attempt that succeeded stays in the
    job row (``Job.history``). Answers the (job, claim) pairs that still owned
    their job."""
    name = dialect()
    data = [(o.claim.job_id, o.claim.token, json_text(storable_json(o.result))) for o in successes]
    changed: set[tuple[str, str | None]] = {
        (row.id, row.claim)
        for row in db.session.execute(
            _success_statement(name), OWNED.params(name, data) | {"now": utcnow()}
        )
    }
    # What an attempt did is true even if it lost the job meanwhile (an email
    # that went out was sent): the kind's hook runs either way.
    by_actor: dict[str, list[str]] = {}
    for outcome in successes:
        claim = outcome.claim
        by_actor.setdefault(claim.actor, []).append(claim.job_id)
        ok = (claim.job_id, claim.token) in changed
        log(claim, "succeeded" if ok else "succeeded, but its lease was taken over")
    for actor, job_ids in by_actor.items():
        kinds.of(actor).succeeded(job_ids)
    return changed


# The successes of a batch, one row per attempt, with its result as JSON text.
OWNED = Rows("owned", {"id": String(), "token": String(), "result": Text()})


@functools.cache
def _success_statement(name: str) -> Update:
    """The UPDATE of ``_succeed``, built once per dialect (Core, not the ORM's
    bulk UPDATE)."""
    owned, jobs = OWNED.table(name), JOBS
    return (
        update(jobs)
        .where(
            jobs.c.id == owned.c.id,
            jobs.c.status == JobStatus.RUNNING,
            jobs.c.claim == owned.c.token,
        )
        .values(
            status=JobStatus.SUCCEEDED,
            finished_at=bindparam("now", type_=UTCDateTime()),
            progress=100,
            result=json_from_text(name, owned.c.result),
            error_type=None,
            error_message=None,
            error_group=None,
        )
        .returning(jobs.c.id, jobs.c.claim)
    )


@dataclass(frozen=True)
class Unrecorded:
    """An outcome the database refused with ``error``; ``hooks``: run the kind's
    ``given_up`` hook (it may be what failed)."""

    claim: Claim
    error: BaseException
    hooks: bool = True


def _fail_unrecorded(request: Unrecorded) -> None:
    """Fail the job with OutcomeNotRecorded and a text that can always be stored,
    so that it leaves ``running`` and says why."""
    claim, error = request.claim, request.error
    failure = OutcomeNotRecorded(
        f"the attempt ended, but recording its outcome failed: {type(error).__name__}: {error}"
    )
    failure.__cause__ = error
    fail(claim, failure, retry_at=None, hooks=request.hooks)


fail_unrecorded: Write[Unrecorded, None] = one_at_a_time(_fail_unrecorded)


@dataclass(frozen=True)
class Unclaimable:
    job_id: str
    error: BaseException


def _fail_unclaimable(request: Unclaimable) -> None:
    """Claiming the job raised an error no retry fixes: fail it with ClaimFailed,
    where a claim would have found it, so that it says why."""
    job_id, error = request.job_id, request.error
    now = utcnow()
    error_type, message, _ = describe(
        ClaimFailed(f"the job could not be claimed: {type(error).__name__}: {error}")
    )
    claimable = Job.status.in_(CLAIMABLE) | ((Job.status == JobStatus.RUNNING) & ~lease_is_live())
    found = db.session.execute(
        select(Job.actor, Job.status, Job.attempts, Job.started_at)
        .where(Job.id == job_id, claimable)
        .with_for_update()
    ).first()
    if found is None:
        return
    if found.status == JobStatus.RUNNING:
        close_interrupted(job_id, found.attempts, found.started_at, now)
    actor = found.actor
    db.session.execute(
        update(Job)
        .where(Job.id == job_id)
        .values(
            status=JobStatus.FAILED,
            finished_at=now,
            next_retry_at=None,
            error_type=error_type,
            error_message=message,
            error_group=group_of(actor, error_type, message),
        )
    )
    kinds.of(actor).given_up([job_id])
    logger.info("job %s (%s) failed: %s", job_id, actor, message)


fail_unclaimable: Write[Unclaimable, None] = one_at_a_time(_fail_unclaimable)


@dataclass(frozen=True)
class Progress:
    claim: Claim
    percent: int


def _set_progress(request: Progress) -> None:
    db.session.execute(
        update(Job).where(owned(request.claim)).values(progress=max(0, min(100, request.percent)))
    )


set_progress: Write[Progress, None] = one_at_a_time(_set_progress)
