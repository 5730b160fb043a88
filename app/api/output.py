"""What the API answers, declared once as pydantic models: views build them
from rows, ``spec.respond`` serialises them, ``app/openapi.py`` documents them.
The HTML pages reuse them for the same rows."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from flask import url_for
from pydantic import BaseModel, PlainSerializer

from app import emails
from app.api.input import ExportFormat, ExportKind
from app.models import Email as EmailRow
from app.models import Export as ExportRow
from app.models import Job as JobRow
from app.states import EmailStatus, ExportStatus, JobStatus

# ISO 8601 with "+00:00", as the API has always written times.
Time = Annotated[datetime, PlainSerializer(lambda value: value.isoformat(), return_type=str)]


class Error(BaseModel):
    """Every error: what is wrong, and (for 422) what is wrong with each field."""

    error: str
    fields: dict[str, str] | None = None
    job_id: str | None = None


class ErrorSummary(BaseModel):
    type: str | None
    message: str | None


# What an owner reads about a failure, by its type: the stored message is the
# raw error (an SMTP reply naming server paths, once an SQL statement), and
# only admins see it. A type not named here is an "Internal error".
PUBLIC_ERRORS = {
    "RecipientRefused": "The mail server refused the recipient",
    "MessageRefused": "The mail server refused the message",
    "DeliveryUnconfirmed": "The mail server did not confirm delivery; an admin will check it",
    "SMTPTemporaryError": "The mail server could not take the message for now",
    "AttachmentMissing": "The export file to attach no longer exists",
    "EmailNotFound": "The email no longer exists",
    "ExportNotFound": "The export no longer exists",
    "WorkerLost": "The worker running it stopped",
    "TimeLimitExceeded": "It took too long and was stopped",
    **dict.fromkeys(
        (
            "ConnectionRefusedError",
            "ConnectionResetError",
            "TimeoutError",
            "SMTPConnectError",
            "SMTPServerDisconnected",
        ),
        "A server it needs could not be reached",
    ),
}
INTERNAL_ERROR = "Internal error"
RETRYING = "Temporary failure; it will be retried"


def error_summary(
    error_type: str | None, message: str | None, *, admin: bool, retrying: bool = False
) -> ErrorSummary | None:
    """A job's or an attempt's error as its reader may see it: the raw message
    for an admin, a short description of its type for anyone else (with "it
    will be retried" while the job is ``retrying``)."""
    if not (error_type or message):
        return None
    if admin:
        return ErrorSummary(type=error_type, message=message)
    public = PUBLIC_ERRORS.get(error_type or "")
    if retrying:
        public = f"{public}; it will be retried" if public else RETRYING
    return ErrorSummary(type=error_type, message=public or INTERNAL_ERROR)


class Attempt(BaseModel):
    attempt: int
    started_at: Time | None
    finished_at: Time | None
    outcome: Literal["running", "succeeded", "failed", "interrupted"]
    error: ErrorSummary | None
    traceback: str | None = None  # admins only; absent for others


class Job(BaseModel):
    id: str
    actor: str
    queue: str
    status: JobStatus
    progress: int
    attempts: int
    max_retries: int
    created_at: Time | None
    started_at: Time | None
    finished_at: Time | None
    next_retry_at: Time | None
    scheduled_for: Time | None
    error: ErrorSummary | None
    result: Any
    history: list[Attempt]

    @classmethod
    def from_row(cls, job: JobRow, *, admin: bool) -> Job:
        history = []
        retrying = job.status == "retrying"
        attempts = job.history
        for number, attempt in enumerate(attempts, 1):
            extra = {"traceback": attempt.traceback} if admin else {}
            last = number == len(attempts)
            history.append(
                Attempt(
                    attempt=attempt.attempt,
                    started_at=attempt.started_at,
                    finished_at=attempt.finished_at,
                    outcome=attempt.outcome,
                    error=error_summary(
                        attempt.error_type,
                        attempt.error_message,
                        admin=admin,
                        retrying=retrying and last,
                    ),
                    **extra,
                )
            )
        return cls(
            id=job.id,
            actor=job.actor,
            queue=job.queue,
            status=job.status,
            progress=job.progress,
            attempts=job.attempts,
            max_retries=job.max_retries,
            created_at=job.created_at,
            started_at=job.started_at,
            finished_at=job.finished_at,
            next_retry_at=job.next_retry_at,
            scheduled_for=job.scheduled_for,
            error=error_summary(job.error_type, job.error_message, admin=admin, retrying=retrying)
            if job.error_type
            else None,
            result=job.result,
            history=history,
        )


class JobPage(BaseModel):
    items: list[Job]
    next_cursor: str | None


class JobChange(BaseModel):
    job_id: str
    status: Literal[JobStatus.QUEUED, JobStatus.CANCELLED]


class CancelRequested(BaseModel):
    """A running export asked to stop: it ends ``cancelled`` within seconds."""

    job_id: str
    status: Literal[JobStatus.RUNNING]
    cancel_requested: Literal[True]


class BulkActionQueued(BaseModel):
    job_id: str
    status: Literal[JobStatus.QUEUED]


class ErrorGroup(BaseModel):
    group: str
    actor: str
    error_type: str | None
    message: str
    count: int
    first_seen: Time | None
    last_seen: Time | None
    sample_job_id: str


class ErrorGroups(BaseModel):
    items: list[ErrorGroup]


class QueuePaused(BaseModel):
    name: str
    paused: bool


class QueueState(BaseModel):
    name: str
    paused: bool
    queued: int
    running: int
    retrying: int
    scheduled: int
    oldest_queued_s: float | None


class QueueStates(BaseModel):
    items: list[QueueState]


class AuditEntry(BaseModel):
    at: Time
    user: str | None
    action: str
    target: dict[str, Any]
    detail: dict[str, Any]


class AuditPage(BaseModel):
    items: list[AuditEntry]
    next_cursor: str | None


class Email(BaseModel):
    id: str
    to: str
    subject: str
    status: EmailStatus
    attempts: int
    resend_rounds: int
    sent_at: Time | None
    job_id: str | None
    error: ErrorSummary | None

    @classmethod
    def from_row(cls, email: EmailRow, *, admin: bool) -> Email:
        status = emails.status(email)
        job = email.job
        error = None
        if job is not None and job.error_type and status != "sent":
            error = error_summary(
                job.error_type, job.error_message, admin=admin, retrying=job.status == "retrying"
            )
        return cls(
            id=email.id,
            to=email.to,
            subject=email.subject,
            status=status,
            attempts=email.attempts,
            resend_rounds=email.resend_rounds,
            sent_at=email.sent_at,
            job_id=email.job_id,
            error=error,
        )


class EmailQueued(BaseModel):
    job_id: str
    email_id: str
    status: EmailStatus


class EmailBatchQueued(BaseModel):
    """One item per message, in the order given."""

    items: list[EmailQueued]


class Export(BaseModel):
    id: str
    kind: ExportKind
    format: ExportFormat
    status: ExportStatus
    progress: int
    rows: int | None
    bytes: int | None
    job_id: str | None
    download_url: str | None

    @classmethod
    def from_row(cls, export: ExportRow, *, endpoint: str = "api.download_export") -> Export:
        job = export.job
        if export.status in ("succeeded", "expired"):
            progress = 100
        else:
            progress = job.progress if job is not None else 0
        done = export.status == "succeeded"
        return cls(
            id=export.id,
            kind=export.kind,
            format=export.format,
            status=export.status,
            progress=progress,
            rows=export.rows,
            bytes=export.bytes,
            job_id=export.job_id,
            download_url=url_for(endpoint, export_id=export.id) if done else None,
        )


class ExportQueued(BaseModel):
    job_id: str
    export_id: str
    status: ExportStatus


class Post(BaseModel):
    id: int
    body: str
    created_at: Time


class Token(BaseModel):
    token: str


class Health(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    database: Literal["ok", "error"]
    broker: Literal["ok", "error"]
