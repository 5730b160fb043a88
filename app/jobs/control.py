"""Retry and Cancel, as the admin page, the API and the CLI offer them."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from sqlalchemy.exc import IntegrityError

from app.db import db
from app.jobs import outbox, state
from app.jobs.state import JobNotFound, JobStateConflict

logger = logging.getLogger(__name__)

__all__ = ["JobNotFound", "JobStateConflict", "cancel", "cancel_many", "retry", "retry_many"]


def retry(job_id: str) -> None:
    """failed or cancelled → queued as a new series, then published through the
    outbox. Raises JobStateConflict unless the job was failed or cancelled."""
    job = state.requeue(job_id)
    try:
        outbox.commit_and_publish(job)
    except IntegrityError:
        # The job's export cannot be unfinished again: the user has another one running.
        db.session.rollback()
        raise JobStateConflict(job_id, "blocked by another unfinished export") from None


def cancel(job_id: str) -> None:
    """queued, retrying or failed → cancelled. Raises JobStateConflict otherwise."""
    state.cancel(job_id)
    db.session.commit()


def retry_many(job_ids: Iterable[str]) -> tuple[int, int]:
    """Retry each job on its own; returns (retried, skipped). A job that moved
    meanwhile (another admin retried it) is skipped, not retried twice."""
    return _each(retry, job_ids)


def cancel_many(job_ids: Iterable[str]) -> tuple[int, int]:
    """Cancel each job on its own; returns (cancelled, skipped)."""
    return _each(cancel, job_ids)


def _each(action, job_ids: Iterable[str]) -> tuple[int, int]:
    done = skipped = 0
    for job_id in job_ids:
        try:
            action(job_id)
            done += 1
        except (JobStateConflict, JobNotFound):
            skipped += 1
    return done, skipped
