"""Queueing emails: one or a batch, each with its ``send_email`` job, under an
idempotency key, in one statement and one commit, then one publish."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from typing import cast as typed_as

from flask import current_app
from sqlalchemy import Table, insert, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload

from app import quotas
from app.db import db, utcnow
from app.emails import SEND_EMAIL, status
from app.jobs import outbox, state
from app.models import Email, new_id
from app.states import EmailStatus, JobStatus

IDEMPOTENCY_WINDOW = timedelta(hours=24)


class IdempotencyKeyReused(Exception):
    """The key came before with a different request: neither answer nor queue."""


def request_hash(request: dict) -> str:
    """What identifies a request for its idempotency key: its fields, canonically
    (a time as ISO 8601). A field left out (``send_at``) is not part of it, so a
    request hashes as it did before the field existed."""
    canonical = json.dumps(
        _without_unset(request), sort_keys=True, separators=(",", ":"), default=str
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def _without_unset(value):
    if isinstance(value, dict):
        return {
            key: _without_unset(item)
            for key, item in value.items()
            if not (key == "send_at" and item is None)
        }
    if isinstance(value, list):
        return [_without_unset(item) for item in value]
    return value


@dataclass(frozen=True)
class NewEmail:
    """One email a user asks to queue."""

    to: str
    subject: str
    body: str
    html: str | None = None
    # When to send it (aware, in the future): its job waits ``scheduled`` until then.
    send_at: datetime | None = None


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
    # A scheduled email is queued too, as its owner sees it (``emails.status``).
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
        job["about"] = about(message.to, message.subject)
        if message.send_at is not None:
            job.update(status=JobStatus.SCHEDULED, scheduled_for=message.send_at)
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
                      max_retries, series, retries, rescues, created_at, published_at, about,
                      scheduled_for)
    SELECT j.id, :user_id, :actor, :queue, json_build_array(j.email_id), j.status, 0, 0,
           :max_retries, :series, :retries, :rescues, j.created_at, j.published_at, j.about,
           j.scheduled_for
    FROM unnest(CAST(:job_ids AS varchar[]), CAST(:ids AS varchar[]),
                CAST(:job_created AS timestamptz[]), CAST(:about AS text[]),
                CAST(:job_status AS varchar[]), CAST(:published AS timestamptz[]),
                CAST(:scheduled_for AS timestamptz[]))
        AS j(id, email_id, created_at, about, status, published_at, scheduled_for)
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
    first = jobs[0]  # every job of a batch has the same kind and user
    params: dict[str, Any] = {name: [row[name] for row in rows] for name in _EMAIL_ARRAYS}
    params.update(
        {name: first[name] for name in ("user_id", "actor", "queue", "max_retries")},
        series=first["series"],
        retries=first["retries"],
        rescues=first["rescues"],
        job_ids=[job["id"] for job in jobs],
        job_created=[job["created_at"] for job in jobs],
        about=[job["about"] for job in jobs],
        job_status=[str(job["status"]) for job in jobs],
        published=[job["published_at"] for job in jobs],
        scheduled_for=[job.get("scheduled_for") for job in jobs],
        ids=params.pop("id"),
    )
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
    job.about = about(to, subject)
    db.session.add(email)
    return email, job


def about(to: str, subject: str) -> str:
    """What the admin search finds an email's job by: its recipient and subject."""
    return f"{to} {subject}"


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
