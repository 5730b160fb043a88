"""Emails: delivering one through Flask-Mail, its job kind, and its state as
users see it. Queueing them is ``app/email_queue.py``."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import cast as typed_as

from sqlalchemy import (
    ColumnElement,
    Select,
    String,
    Table,
    Update,
    bindparam,
    or_,
    select,
    update,
)

from app import email_message, smtp
from app.db import UTCDateTime, db, dialect, read_without_transaction, utcnow
from app.exports import files
from app.jobs import attempts, outcomes, workers
from app.jobs.errors import PermanentError
from app.jobs.kinds import JobKind, subject_row
from app.list_params import Ids
from app.models import Email, Job
from app.states import RETRYABLE, EmailStatus, JobStatus


class EmailNotFound(PermanentError, LookupError):
    """The message names an email that has no row; retrying cannot help."""


class AttachmentMissing(PermanentError):
    """The file to attach is gone (its export expired); sending cannot succeed."""


# Failures that a resend cannot fix either (job.error_type holds the class name).
PERMANENT_ERRORS = tuple(
    error.__name__
    for error in (
        EmailNotFound,
        smtp.RecipientRefused,
        smtp.MessageRefused,
        smtp.DeliveryUnconfirmed,  # the server may have it: a person decides
        outcomes.OutcomeNotRecorded,  # it may have been sent: likewise
        AttachmentMissing,
    )
)


# The states of a job that will not send its email unless someone retries it
# (ended without succeeding); with the job gone, nothing will.
GAVE_UP = RETRYABLE


def status(email: Email) -> EmailStatus:
    """Derived from ``sent_at`` and the current job, so that it can never
    disagree with the job. A missing job was deleted after finishing without
    sending, so the email failed (``failed()`` is the same rule in SQL)."""
    if email.sent_at is not None:
        return EmailStatus.SENT
    job = email.job
    if job is None or job.status in GAVE_UP:
        return EmailStatus.FAILED
    if job.status in (JobStatus.SCHEDULED, JobStatus.QUEUED):
        return EmailStatus.QUEUED
    return EmailStatus.SENDING


def failed() -> ColumnElement[bool]:
    """The emails whose ``status`` is failed: not sent, and the job gone or in
    GAVE_UP. For a query that outer-joins each email's job (``Email.job``)."""
    return Email.sent_at.is_(None) & or_(Job.id.is_(None), Job.status.in_(GAVE_UP))


def deliver(email_id: str, *, before_data: Callable[[], object] | None = None) -> None:
    """Send the email unless it is already recorded as sent, which makes a
    redelivered message harmless. The Message-ID header is the same on every
    attempt, so a receiving server can also drop a duplicate when a worker dies
    between the SMTP server's acceptance and the ``sent_at`` write.

    ``before_data`` goes to ``smtp.send``: called right before the message
    itself is sent, it may raise to stop the send."""
    read_without_transaction()
    email = db.session.get(Email, email_id)
    if email is None:
        raise EmailNotFound(email_id)
    if email.sent_at is not None:
        return
    path = None
    if email.attachment:
        path = files.finished_path(email.attachment)
        if not path.is_file():
            raise AttachmentMissing(f"{email.attachment} no longer exists")
    message = email_message.build(email, path)
    # The attempt was counted when it was claimed, and ``sent_at`` is written
    # with the job's success (``mark_sent``, in the same commit): no write of
    # its own, and no transaction open while the SMTP server is talking.
    db.session.rollback()
    smtp.send(message, before_data=before_data)


def count_attempt(job_ids: Sequence[str]) -> None:
    """The claim of an attempt is the email's attempt too."""
    name = dialect()
    db.session.execute(_count_attempt_statement(name), JOB_IDS.params(name, job_ids))


def mark_sent(job_ids: Sequence[str]) -> None:
    """The job succeeded: the SMTP server accepted the email.
    The one window for a second copy is a worker dying between that and this
    commit (see docs/reliability.md)."""
    name = dialect()
    params = JOB_IDS.params(name, job_ids) | {"now": utcnow()}
    db.session.execute(_mark_sent_statement(name), params)


# The hooks' statements, built once per dialect (app/list_params.py).
JOB_IDS = Ids("job_ids", String())
EMAILS = typed_as(Table, Email.__table__)


@functools.cache
def _count_attempt_statement(name: str) -> Update:
    return (
        update(EMAILS)
        .where(JOB_IDS.contains(name, EMAILS.c.job_id))
        .values(attempts=EMAILS.c.attempts + 1)
    )


@functools.cache
def _mark_sent_statement(name: str) -> Update:
    return (
        update(EMAILS)
        .where(JOB_IDS.contains(name, EMAILS.c.job_id), EMAILS.c.sent_at.is_(None))
        .values(sent_at=bindparam("now", type_=UTCDateTime()))
    )


def check_still_to_send(email_id: str) -> None:
    """Called immediately before DATA: the attempt may send only while it owns
    its job under a live lease and the email is not recorded as sent. Raises
    AttemptFenced otherwise: a worker paused past its lease (a stopped process,
    a paused VM) whose job was taken over and sent meanwhile sends no copy."""
    if not workers.process_is_live():
        raise attempts.AttemptFenced("this worker cannot renew its lease")
    claim, name = attempts.current_claim.get(), dialect()
    params = {"email_id": email_id}
    read_without_transaction()
    if claim is not None:
        params |= attempts.owning_params(name, claim)
    found = db.session.execute(_unsent_statement(name, claim is not None), params).first()
    db.session.rollback()
    if found is None:
        raise attempts.AttemptFenced(
            f"email {email_id} is sent already, or its job was taken over by another attempt"
        )


@functools.cache
def _unsent_statement(name: str, owned: bool) -> Select:
    """The email, while it has no ``sent_at`` (and, when ``owned``, while the
    attempt owns its job under a live lease): built once per dialect."""
    unsent = select(EMAILS.c.id).where(
        EMAILS.c.id == bindparam("email_id"), EMAILS.c.sent_at.is_(None)
    )
    return unsent.where(attempts.still_owns(name)) if owned else unsent


def _subject(job) -> dict:
    email = subject_row(Email, job)
    return {"email": email, "email_status": status(email) if email else None}


SEND_EMAIL = JobKind(
    actor="send_email",
    queue="emails",
    max_retries_setting="EMAIL_MAX_RETRIES",
    # Above MAIL_DATA_TIMEOUT (600 s) and a few MAIL_TIMEOUTs: the limit must not
    # interrupt the wait for the server's answer to the end of DATA.
    time_limit_ms=20 * 60 * 1000,
    on_claimed=count_attempt,
    on_succeeded=mark_sent,
    subject=_subject,
)
