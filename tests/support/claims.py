"""Claiming a job and ending its attempt as a worker would, for tests that drive
the job system's writes directly."""

from __future__ import annotations

import uuid
from datetime import datetime

from app.jobs import attempts, durable, outcomes
from app.jobs.outcomes import Outcome
from app.states import JobStatus


def claim(job_id: str, *, series: int = 0, worker_id: str = "test-worker") -> attempts.Claim | None:
    request = attempts.StartAttempt(
        job_id, series=series, worker_id=worker_id, token=uuid.uuid4().hex
    )
    return durable.write(attempts.start_attempt, request)


def record_success(claim: attempts.Claim, result=None) -> bool:
    return durable.write(outcomes.record, Outcome.succeeded(claim, result))


def record_failure(
    claim: attempts.Claim, error: BaseException, *, retry_at: datetime | None = None
) -> bool:
    """The attempt failed; it is retried at ``retry_at``, or failed for good without."""
    status = JobStatus.FAILED if retry_at is None else JobStatus.RETRYING
    outcome = Outcome(claim, status, error=error, retry_at=retry_at)
    return durable.write(outcomes.record, outcome)
