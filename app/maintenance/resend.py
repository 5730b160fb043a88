"""Resending failed emails: each goes back through ``send_email`` as a new series
of attempts, at most EMAIL_RESEND_MAX_ROUNDS times. An email refused for good (a
bad recipient) and an email already sent are never resent."""

from __future__ import annotations

from datetime import timedelta

from flask import current_app
from sqlalchemy import select, update

from app.db import db, dialect, utcnow
from app.emails import PERMANENT_ERRORS
from app.jobs import control
from app.jobs.kinds import HOUR_MS, JobKind
from app.list_params import one_of
from app.maintenance.service import Service, Summary
from app.models import Email, Job
from app.states import JobStatus

# Periodic and idempotent: never retried, the next tick is the retry.
RESEND_FAILED_EMAILS = JobKind(
    actor="resend_failed_emails", queue="maintenance", time_limit_ms=HOUR_MS
)


def resendable():
    """Emails failed for longer than RESEND_INTERVAL_S, with rounds left, whose
    failure was not permanent."""
    config = current_app.config
    failed_before = utcnow() - timedelta(seconds=config["RESEND_INTERVAL_S"])
    return (
        select(Email.job_id)
        .join(Job, Job.id == Email.job_id)
        .where(
            Email.sent_at.is_(None),
            Email.resend_rounds < config["EMAIL_RESEND_MAX_ROUNDS"],
            Job.status == JobStatus.FAILED,
            Job.finished_at < failed_before,
            Job.error_type.not_in(PERMANENT_ERRORS),
        )
        .order_by(Job.finished_at)
    )


def resend_failed_emails() -> Summary:
    resent = 0
    while True:
        job_ids = db.session.scalars(resendable().limit(control.BATCH)).all()
        db.session.rollback()
        retried, _ = control.retry_many(job_ids, also=_count_round)
        resent += retried
        if not retried:  # none left, or the rest retried by someone else meanwhile
            return {"resent": resent}


def _count_round(job_ids: list[str]) -> None:
    """The round is counted in the transaction of the requeue."""
    if not job_ids:
        return
    db.session.execute(
        update(Email)
        .where(one_of(dialect(), Email.job_id, job_ids))
        .values(resend_rounds=Email.resend_rounds + 1)
    )


SERVICE = Service(
    "resend_failed_emails",
    "RESEND_INTERVAL_S",
    resend_failed_emails,
    kind=RESEND_FAILED_EMAILS,
    metrics=("emails_failed",),
)
