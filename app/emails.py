"""Emails: queueing them (one or a batch, with their jobs and idempotency key),
delivering one through Flask-Mail, and its state as users see it."""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from typing import cast as typed_as

from flask import current_app
from sqlalchemy import (
    ColumnElement,
    Select,
    String,
    Table,
    Update,
    bindparam,
    insert,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload

from app import email_message, quotas, smtp
from app.db import UTCDateTime, db, dialect, read_without_transaction, utcnow
from app.exports import files
from app.jobs import attempts, outbox, outcomes, state, workers
from app.jobs.errors import PermanentError
from app.jobs.kinds import JobKind, subject_row
from app.list_params import Ids
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


@dataclass(frozen=True)
class NewEmail:
    """One email a user asks to queue."""

    to: str
    subject: str
    body: str
    html: str | None = None


@dataclass(frozen=True)
class Queued:
    """A queued email as its request answers it."""

    job_id: str | None  # None only once a finished job is deleted (JOB_RETENTION_DAYS)
    email_id: str
    status: EmailStatus


class MessageTooLarge(quotas.EmailTooLarge):
    """The batch's message at ``index`` is over EMAIL_MAX_BODY_BYTES."""

    def __init__(self, index: int, error: quotas.EmailTooLarge):
        super().__init__(str(error))
        self.index = index


def queue_email(
    *,
    user_id: int,
    message: NewEmail,
    idempotency_key: str | None,
    request_hash: str | None = None,
) -> tuple[Queued, bool]:
    """``queue_emails`` of one email; raises quotas.EmailTooLarge for it."""
    try:
        [queued], new = queue_emails(
            user_id=user_id,
            messages=[message],
            idempotency_key=idempotency_key,
            request_hash=request_hash,
        )
    except MessageTooLarge as error:
        raise quotas.EmailTooLarge(str(error)) from None
    return queued, new


def queue_emails(
    *,
    user_id: int,
    messages: Sequence[NewEmail],
    idempotency_key: str | None,
    request_hash: str | None = None,
) -> tuple[list[Queued], bool]:
    """Commit the emails and their jobs, in the order given, then publish the
    jobs in one batch: one INSERT for the jobs, one for the emails, one commit.
    Returns what each is, and whether they are new; a repeated idempotency key
    returns the first request's emails, or raises IdempotencyKeyReused when it
    came with a different request.

    Raises MessageTooLarge or quotas.QuotaExceeded (queueing nothing) for a
    message over EMAIL_MAX_BODY_BYTES or more emails than the user's
    USER_EMAILS_PER_HOUR leaves room for."""
    for index, message in enumerate(messages):
        try:
            quotas.check_email_size(message.body, message.html)
        except quotas.EmailTooLarge as error:
            raise MessageTooLarge(index, error) from None
    if idempotency_key is not None:
        existing = _by_idempotency_key(user_id, idempotency_key, request_hash)
        if existing is not None:
            return existing, False
    quotas.check_emails(user_id, len(messages))
    jobs, rows = _rows(user_id, messages, idempotency_key, request_hash)
    try:
        outgoing = _insert(jobs, rows)
        outbox.commit_then_publish(outgoing)
    except IntegrityError:
        # A concurrent request with the same key committed first: answer with its emails.
        db.session.rollback()
        existing = None
        if idempotency_key is not None:
            existing = _by_idempotency_key(user_id, idempotency_key, request_hash)
        if existing is None:
            raise
        return existing, False
    return [Queued(row["job_id"], row["id"], EmailStatus.QUEUED) for row in rows], True


def _rows(
    user_id: int, messages: Sequence[NewEmail], key: str | None, request_hash: str | None
) -> tuple[list[dict], list[dict]]:
    """The jobs' and the emails' column values. The first email holds the key;
    with a key, each email of a batch of several names the first and its place
    (``batch_id``, ``batch_index``), which a repeat answers from."""
    domain = _mail_domain()
    jobs: list[dict] = []
    rows: list[dict] = []
    for index, message in enumerate(messages):
        job = state.new_job_values(SEND_EMAIL, args=[], user_id=user_id)
        row = _email_values(job["id"], user_id, message, domain=domain)
        job["args"] = [row["id"]]
        first = index == 0
        in_batch = key is not None and len(messages) > 1
        row.update(
            idempotency_key=key if first else None,
            request_hash=request_hash if first else None,
            batch_id=(row["id"] if first else rows[0]["id"]) if in_batch else None,
            batch_index=index if in_batch else None,
            user_queued=True,
        )
        jobs.append(job)
        rows.append(row)
    return jobs, rows


# Each job and its email in one statement of one shape whatever the batch's
# size (PostgreSQL; arrays, one per column that differs between rows): one
# round trip, prepared by psycopg after a few runs. The emails' foreign key to
# their jobs is checked at the end of the statement, when both are in.
_INSERT_JOBS_AND_EMAILS = text(
    """
WITH new_jobs AS (
    INSERT INTO jobs (id, user_id, actor, queue, args, status, progress, attempts,
                      max_retries, series, retries, rescues, created_at, published_at)
    SELECT j.id, :user_id, :actor, :queue, json_build_array(j.email_id), :status, 0, 0,
           :max_retries, :series, :retries, :rescues, j.created_at, :published_at
    FROM unnest(CAST(:job_ids AS varchar[]), CAST(:ids AS varchar[]),
                CAST(:job_created AS timestamptz[])) AS j(id, email_id, created_at)
)
INSERT INTO emails (id, user_id, job_id, "to", subject, body, html, message_id, attempts,
                    resend_rounds, idempotency_key, request_hash, batch_id, batch_index,
                    user_queued, created_at)
SELECT e.id, :user_id, e.job_id, e.to_, e.subject, e.body, e.html, e.message_id, 0, 0,
       e.idempotency_key, e.request_hash, e.batch_id, e.batch_index, true, e.created_at
FROM unnest(CAST(:ids AS varchar[]), CAST(:job_ids AS varchar[]), CAST(:to AS varchar[]),
            CAST(:subject AS varchar[]), CAST(:body AS text[]), CAST(:html AS text[]),
            CAST(:message_id AS varchar[]), CAST(:idempotency_key AS varchar[]),
            CAST(:request_hash AS varchar[]), CAST(:batch_id AS varchar[]),
            CAST(:batch_index AS integer[]), CAST(:created_at AS timestamptz[]))
    AS e(id, job_id, to_, subject, body, html, message_id, idempotency_key, request_hash,
         batch_id, batch_index, created_at)
"""
)
_INSERT_EMAILS = insert(typed_as(Table, Email.__table__))
_EMAIL_ARRAYS = (
    "id", "job_id", "to", "subject", "body", "html", "message_id", "idempotency_key",
    "request_hash", "batch_id", "batch_index", "created_at",
)  # fmt: skip


def _insert(jobs: list[dict], rows: list[dict]) -> outbox.Outgoing:
    """Add the jobs (published, ``outbox.outgoing``) and their emails to the
    current transaction: one statement on PostgreSQL, else one INSERT each;
    Core on the session's connection, never the ORM's bulk machinery."""
    connection = db.session.connection()
    if connection.dialect.name != "postgresql":
        sending = outbox.insert_jobs(jobs)
        connection.execute(_INSERT_EMAILS, rows)
        return sending
    sending = outbox.outgoing(jobs)
    first = jobs[0]  # every job of a batch has the same kind, user and state
    params: dict[str, Any] = {name: [row[name] for row in rows] for name in _EMAIL_ARRAYS}
    params.update(
        {name: first[name] for name in ("user_id", "actor", "queue", "status", "max_retries")},
        series=first["series"],
        retries=first["retries"],
        rescues=first["rescues"],
        published_at=sending.at,
        job_ids=[job["id"] for job in jobs],
        job_created=[job["created_at"] for job in jobs],
        ids=params.pop("id"),
    )
    params["status"] = str(params["status"])
    connection.execute(_INSERT_JOBS_AND_EMAILS, params)
    return sending


def _email_values(
    job_id: str, user_id: int, message: NewEmail, *, domain: str, attachment: str | None = None
) -> dict:
    return {
        "id": new_id(),
        "user_id": user_id,
        "job_id": job_id,
        "to": message.to,
        "subject": message.subject,
        "body": message.body,
        "html": message.html,
        "message_id": f"<{job_id}@{domain}>",
        "attachment": attachment,
        "created_at": utcnow(),
    }


def new_email(
    *,
    user_id: int,
    to: str,
    subject: str,
    body: str,
    html: str | None = None,
    attachment: str | None = None,
):
    """An email of the app's own (an export's delivery) and its ``send_email``
    job, added to the session; the caller commits and publishes them with
    ``outbox.commit_and_publish(job)``."""
    job = state.new_job(SEND_EMAIL, args=[], user_id=user_id)
    message = NewEmail(to=to, subject=subject, body=body, html=html)
    email = Email(
        **_email_values(job.id, user_id, message, domain=_mail_domain(), attachment=attachment)
    )
    job.args = [email.id]
    db.session.add(email)
    return email, job


def _by_idempotency_key(user_id: int, key: str, request_hash: str | None) -> list[Queued] | None:
    email = db.session.scalar(
        select(Email).where(Email.user_id == user_id, Email.idempotency_key == key)
    )
    if email is None:
        return None
    if email.created_at <= utcnow() - IDEMPOTENCY_WINDOW:
        # Past the window the key may be used again: release it from the old email.
        db.session.execute(update(Email).where(Email.id == email.id).values(idempotency_key=None))
        return None
    # Rows from before request hashes were kept (NULL) match any request.
    if email.request_hash not in (None, request_hash):
        db.session.rollback()
        raise IdempotencyKeyReused(key)
    batch = [email]
    if email.batch_id is not None:
        batch = list(
            db.session.scalars(
                select(Email)
                .where(Email.batch_id == email.batch_id)
                .order_by(Email.batch_index)
                .options(selectinload(Email.job))
            )
        )
    return [Queued(e.job_id, e.id, status(e)) for e in batch]


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
