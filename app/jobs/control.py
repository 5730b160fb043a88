"""Retry and Cancel, as the admin pages, the API, the CLI and the scheduler's
resend offer them: for one job, or for many in batches (one conditional UPDATE,
one commit and one batched publish per ``BATCH`` jobs)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import islice

from sqlalchemy import select

from app.db import db, utcnow
from app.jobs import outbox, state
from app.jobs.state import JobNotFound, JobStateConflict
from app.models import Job
from app.states import JobStatus

logger = logging.getLogger(__name__)

__all__ = [
    "BATCH",
    "JobNotFound",
    "JobStateConflict",
    "cancel",
    "cancel_many",
    "retry",
    "retry_many",
    "run_now",
]

# Jobs per transaction and per publish: big enough that a statement's and a
# confirm's round trips are a small part of each job, small enough that a batch
# holds its rows' locks for a fraction of a second.
BATCH = 1000

# A write of the caller's in the transaction of each batch, given the ids it
# changed (the resend counts each email's round with its requeue; a bulk action
# moves its cursor): it commits with the batch, or neither does.
AlsoWrite = Callable[[list[str]], None]


def retry(job_id: str, *, also: AlsoWrite | None = None) -> None:
    """failed or cancelled → queued as a new series, then published through the
    outbox. Raises JobNotFound, or JobStateConflict unless the job was failed or
    cancelled (or when its export is blocked by another unfinished one); ``also``
    is written and committed either way."""
    if not _retry_batch([job_id], also):
        state.conflict(job_id)


def cancel(job_id: str, *, also: AlsoWrite | None = None) -> JobStatus:
    """queued, retrying or failed → cancelled; a running job whose kind can stop
    part way (an export) is asked to, and stops within seconds. Answers the
    job's status: cancelled, or running with its cancel requested. Raises
    JobNotFound, or JobStateConflict otherwise; ``also`` is written and
    committed either way."""
    cancelled = state.cancel([job_id])
    requested = not cancelled and state.request_cancel(job_id)
    if also is not None:
        also(cancelled or ([job_id] if requested else []))
    db.session.commit()
    if not (cancelled or requested):
        state.conflict(job_id)
    return JobStatus.RUNNING if requested else JobStatus.CANCELLED


def run_now(job_id: str, *, also: AlsoWrite | None = None) -> None:
    """scheduled → queued now, and published. Raises JobNotFound, or
    JobStateConflict unless the job was scheduled; ``also`` is written either way."""
    at = utcnow()
    rows = state.run_now(job_id, published_at=at)
    if also is not None:
        also([row["id"] for row in rows])
    outbox.commit_then_publish(outbox.Outgoing([outbox.message_for_values(r) for r in rows], at))
    if not rows:
        status = db.session.scalar(select(Job.status).where(Job.id == job_id))
        db.session.rollback()
        if status is None:
            raise JobNotFound(job_id)
        raise JobStateConflict(job_id, status)


def retry_many(job_ids: Iterable[str], *, also: AlsoWrite | None = None) -> tuple[int, int]:
    """Retry the jobs, ``BATCH`` at a time; returns (retried, skipped). A job
    that moved meanwhile (another admin retried it) is skipped, not retried
    twice."""
    retried = skipped = 0
    for batch in batched(job_ids, BATCH):
        done = _retry_batch(batch, also)
        retried += done
        skipped += len(batch) - done
    return retried, skipped


def cancel_many(job_ids: Iterable[str], *, also: AlsoWrite | None = None) -> tuple[int, int]:
    """Cancel the jobs, ``BATCH`` at a time; returns (cancelled, skipped)."""
    cancelled = skipped = 0
    for batch in batched(job_ids, BATCH):
        changed = state.cancel(batch)
        if also is not None:
            also(changed)
        db.session.commit()
        done = len(changed)
        cancelled += done
        skipped += len(batch) - done
    return cancelled, skipped


def _retry_batch(job_ids: Sequence[str], also: AlsoWrite | None) -> int:
    at = utcnow()
    rows = state.requeue(job_ids, published_at=at)
    if also is not None:
        also([row["id"] for row in rows])
    outbox.commit_then_publish(
        outbox.Outgoing([outbox.message_for_values(row) for row in rows], at)
    )
    return len(rows)


def batched(items: Iterable[str], size: int) -> Iterator[tuple[str, ...]]:
    """``itertools.batched`` (Python 3.12), for Python 3.11."""
    iterator = iter(items)
    while batch := tuple(islice(iterator, size)):
        yield batch
