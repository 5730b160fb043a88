"""Rows made directly, in any state, for tests that need a table as it would be
after some history: jobs (with failed attempts), and nothing else a test could
make through the app itself. Call inside an app context; the caller commits."""

from __future__ import annotations

from datetime import datetime, timedelta

from app.db import db, utcnow
from app.jobs import kinds, state
from app.jobs.kinds import JobKind
from app.models import Job, JobAttempt
from app.states import FINISHED, JobStatus


def job(
    actor: str = "send_email",
    *,
    status: str = JobStatus.QUEUED,
    created_at: datetime | None = None,
    args: list | None = None,
    user_id: int | None = None,
    max_retries: int = 2,
    failed_attempts: int = 0,
    error_type: str | None = None,
    error_message: str | None = None,
    **values,
) -> Job:
    """A job of ``actor`` (a registered kind, or a stray actor on queue "default")
    in ``status``; a finished one finished 30 s after it was created. It has one
    failed attempt, with a traceback, per ``failed_attempts``."""
    kind = kinds.registry().get(actor) or JobKind(actor, "default", time_limit_ms=0)
    row = state.new_job(
        kind, args=args if args is not None else [], max_retries=max_retries, user_id=user_id
    )
    row.status = status
    row.created_at = created_at or utcnow()
    row.attempts = failed_attempts
    row.error_type, row.error_message = error_type, error_message
    if status in FINISHED:
        row.finished_at = row.created_at + timedelta(seconds=30)
    for name, value in values.items():
        setattr(row, name, value)
    db.session.flush()
    for number in range(1, failed_attempts + 1):
        db.session.add(
            JobAttempt(
                job_id=row.id,
                attempt=number,
                started_at=row.created_at + timedelta(seconds=number),
                finished_at=row.created_at + timedelta(seconds=number, milliseconds=500),
                outcome=JobStatus.FAILED,
                error_type=error_type or "RuntimeError",
                error_message=f"attempt {number}: {error_message}",
                traceback=f"Traceback (most recent call last):\n  line {number}\n"
                f"{error_type or 'RuntimeError'}: attempt {number} went wrong",
            )
        )
    return row
