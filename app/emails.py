"""Emails: queueing one (with its job and idempotency key), delivering it through
Flask-Mail, and its state as users see it."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from datetime import timedelta

from flask import current_app
from sqlalchemy import ColumnElement, or_, select, update
from sqlalchemy.exc import IntegrityError

from app import email_message, quotas, smtp
from app.db import db, one_of, utcnow
from app.exports import files
from app.jobs import attempts, outbox, outcomes, state, workers
from app.jobs.errors import PermanentError
from app.jobs.kinds import JobKind, subject_row
from app.models import Email, Job, new_id
from app.states import RETRYABLE, EmailStatus, JobStatus

IDEMPOTENCY_WINDOW = timedelta(hours=24)


class IdempotencyKeyReused(Exception):
    """The key came before with a different request: neither answer nor queue."""


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
    if job.status == JobStatus.QUEUED:
        return EmailStatus.QUEUED
    return EmailStatus.SENDING


def failed() -> ColumnElement[bool]:
    """The emails whose ``status`` is failed: not sent, and the job gone or in
    GAVE_UP. For a query that outer-joins each email's job (``Email.job``)."""
    return Email.sent_at.is_(None) & or_(Job.id.is_(None), Job.status.in_(GAVE_UP))


def request_hash(request: dict) -> str:
    """What identifies a request for its idempotency key: its fields, canonically."""
    canonical = json.dumps(request, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def queue_email(
    *,
    user_id: int,
    to: str,
    subject: str,
    body: str,
    html: str | None,
    idempotency_key: str | None,
    request_hash: str | None = None,
) -> tuple[Email, bool]:
    """Commit an email and its job, then publish the job. Returns the email and
    whether it is new; a repeated idempotency key returns the first email, or
    raises IdempotencyKeyReused when it came with a different request.

    Raises quotas.EmailTooLarge or quotas.QuotaExceeded (queueing nothing) for
    an email over EMAIL_MAX_BODY_BYTES or over the user's USER_EMAILS_PER_HOUR."""
    quotas.check_email_size(body, html)
    if idempotency_key is not None:
        existing = _by_idempotency_key(user_id, idempotency_key, request_hash)
        if existing is not None:
            return existing, False
    quotas.check_emails(user_id)
    email, job = new_email(
        user_id=user_id,
        to=to,
        subject=subject,
        body=body,
        html=html,
        idempotency_key=idempotency_key,
    )
    email.request_hash = request_hash
    email.user_queued = True
    try:
        outbox.commit_and_publish(job)
    except IntegrityError:
        # A concurrent request with the same key committed first: answer with its email.
        db.session.rollback()
        if idempotency_key is None:
            raise
        existing = _by_idempotency_key(user_id, idempotency_key, request_hash)
        if existing is None:
            raise
        return existing, False
    return email, True


def new_email(
    *,
    user_id: int,
    to: str,
    subject: str,
    body: str,
    html: str | None = None,
    idempotency_key: str | None = None,
    attachment: str | None = None,
):
    """An email and its ``send_email`` job, added to the session; the caller
    commits and publishes them with ``outbox.commit_and_publish(job)``."""
    job = state.new_job(SEND_EMAIL, args=[], user_id=user_id)
    email = Email(
        id=new_id(),
        user_id=user_id,
        job_id=job.id,
        to=to,
        subject=subject,
        body=body,
        html=html,
        message_id=f"<{job.id}@{_mail_domain()}>",
        idempotency_key=idempotency_key,
        attachment=attachment,
        created_at=utcnow(),
    )
    job.args = [email.id]
    db.session.add(email)
    return email, job


def _by_idempotency_key(user_id: int, key: str, request_hash: str | None) -> Email | None:
    email = db.session.scalar(
        select(Email).where(Email.user_id == user_id, Email.idempotency_key == key)
    )
    if email is None or email.created_at > utcnow() - IDEMPOTENCY_WINDOW:
        # Rows from before request hashes were kept (NULL) match any request.
        if email is not None and email.request_hash not in (None, request_hash):
            db.session.rollback()
            raise IdempotencyKeyReused(key)
        return email
    # Past the window the key may be used again: release it from the old email.
    db.session.execute(update(Email).where(Email.id == email.id).values(idempotency_key=None))
    return None


def _mail_domain() -> str:
    sender = current_app.config["MAIL_DEFAULT_SENDER"]
    address = sender[1] if isinstance(sender, tuple) else sender
    return address.rpartition("@")[2].strip("> ") or "localhost"


def deliver(email_id: str, *, before_data: Callable[[], object] | None = None) -> None:
    """Send the email unless it is already recorded as sent, which makes a
    redelivered message harmless. The Message-ID header is the same on every
    attempt, so a receiving server can also drop a duplicate when a worker dies
    between the SMTP server's acceptance and the ``sent_at`` write.

    ``before_data`` goes to ``smtp.send``: called right before the message
    itself is sent, it may raise to stop the send."""
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
    db.session.execute(
        update(Email).where(one_of(Email.job_id, job_ids)).values(attempts=Email.attempts + 1),
        execution_options={"synchronize_session": False},
    )


def mark_sent(job_ids: Sequence[str]) -> None:
    """The job succeeded: the SMTP server accepted the email.
    The one window for a second copy is a worker dying between that and this
    commit (see docs/reliability.md)."""
    db.session.execute(
        update(Email)
        .where(one_of(Email.job_id, job_ids), Email.sent_at.is_(None))
        .values(sent_at=utcnow()),
        execution_options={"synchronize_session": False},
    )


def check_still_to_send(email_id: str) -> None:
    """Called immediately before DATA: the attempt may send only while it owns
    its job under a live lease and the email is not recorded as sent. Raises
    AttemptFenced otherwise: a worker paused past its lease (a stopped process,
    a paused VM) whose job was taken over and sent meanwhile sends no copy."""
    if not workers.process_is_live():
        raise attempts.AttemptFenced("this worker cannot renew its lease")
    claim = attempts.current_claim.get()
    unsent = select(Email.id).where(Email.id == email_id, Email.sent_at.is_(None))
    if claim is not None:
        unsent = unsent.where(attempts.still_owns(claim))
    found = db.session.execute(unsent).first()
    db.session.rollback()
    if found is None:
        raise attempts.AttemptFenced(
            f"email {email_id} is sent already, or its job was taken over by another attempt"
        )


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
