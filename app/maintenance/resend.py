"""Resending failed emails: each goes back through ``send_email`` as a new series
of attempts, at most EMAIL_RESEND_MAX_ROUNDS times. An email refused for good (a
bad recipient) and an email already sent are never resent."""

from __future__ import annotations

from datetime import timedelta

from flask import current_app
from sqlalchemy import select, update

from app.db import db, utcnow
from app.emails import PERMANENT_ERRORS
from app.jobs import control
from app.jobs.kinds import HOUR_MS, JobKind
from app.maintenance.service import Service, Summary
from app.models import Email, Job
from app.states import JobStatus

# Periodic and idempotent: never retried, the next tick is the retry.
RESEND_FAILED_EMAILS = JobKind(
    actor="resend_failed_emails", queue="maintenance", time_limit_ms=HOUR_MS
)

BATCH = 200


def resendable():
    """Emails failed for longer than RESEND_INTERVAL_S, with rounds left, whose
    failure was not permanent."""
    config = current_app.config
    failed_before = utcnow() - timedelta(seconds=config["RESEND_INTERVAL_S"])
    return (
        select(Email.id, Email.job_id)
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
        batch = db.session.execute(resendable().limit(BATCH)).all()
        db.session.rollback()
        if not batch:
            return {"resent": resent}
        for email_id, job_id in batch:
            try:
                # The round is counted in the same transaction as the requeue.
                db.session.execute(
                    update(Email)
                    .where(Email.id == email_id)
                    .values(resend_rounds=Email.resend_rounds + 1)
                )
                control.retry(job_id)
                resent += 1
            except (control.JobStateConflict, control.JobNotFound):
                db.session.rollback()  # retried by someone else meanwhile


SERVICE = Service(
    "resend_failed_emails",
    "RESEND_INTERVAL_S",
    resend_failed_emails,
    kind=RESEND_FAILED_EMAILS,
    metrics=("emails_failed",),
)
