"""What the API answers, declared once as pydantic models: views build them
from rows, ``spec.respond`` serialises them, ``app/openapi.py`` documents them.
The HTML pages reuse them for the same rows."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from flask import url_for
from pydantic import BaseModel, PlainSerializer

from app import emails
from app.models import EXPORT_FORMATS, EXPORT_KINDS, EXPORT_STATUSES, JOB_STATUSES
from app.models import Email as EmailRow
from app.models import Export as ExportRow
from app.models import Job as JobRow

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


def _summary(error_type: str | None, message: str | None) -> ErrorSummary | None:
    return ErrorSummary(type=error_type, message=message) if error_type or message else None


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
    status: Literal[JOB_STATUSES]  # type: ignore[valid-type]
    progress: int
    attempts: int
    max_retries: int
    created_at: Time | None
    started_at: Time | None
    finished_at: Time | None
    next_retry_at: Time | None
    error: ErrorSummary | None
    result: Any
    history: list[Attempt]

    @classmethod
    def from_row(cls, job: JobRow, *, admin: bool) -> Job:
        history = []
        for attempt in job.history:
            extra = {"traceback": attempt.traceback} if admin else {}
            history.append(
                Attempt(
                    attempt=attempt.attempt,
                    started_at=attempt.started_at,
                    finished_at=attempt.finished_at,
                    outcome=attempt.outcome,
                    error=_summary(attempt.error_type, attempt.error_message),
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
            error=_summary(job.error_type, job.error_message) if job.error_type else None,
            result=job.result,
            history=history,
        )


class JobPage(BaseModel):
    items: list[Job]
    next_cursor: str | None


class JobChange(BaseModel):
    job_id: str
    status: Literal["queued", "cancelled"]


class Email(BaseModel):
    id: str
    to: str
    subject: str
    status: Literal["queued", "sending", "sent", "failed"]
    attempts: int
    resend_rounds: int
    sent_at: Time | None
    job_id: str | None
    error: ErrorSummary | None

    @classmethod
    def from_row(cls, email: EmailRow) -> Email:
        status = emails.status(email)
        job = email.job
        failed = job is not None and job.error_type and status != "sent"
        return cls(
            id=email.id,
            to=email.to,
            subject=email.subject,
            status=status,
            attempts=email.attempts,
            resend_rounds=email.resend_rounds,
            sent_at=email.sent_at,
            job_id=email.job_id,
            error=ErrorSummary(type=job.error_type, message=job.error_message) if failed else None,
        )


class EmailQueued(BaseModel):
    job_id: str
    email_id: str
    status: Literal["queued", "sending", "sent", "failed"]


class Export(BaseModel):
    id: str
    kind: Literal[EXPORT_KINDS]  # type: ignore[valid-type]
    format: Literal[EXPORT_FORMATS]  # type: ignore[valid-type]
    status: Literal[EXPORT_STATUSES]  # type: ignore[valid-type]
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
    status: Literal[EXPORT_STATUSES]  # type: ignore[valid-type]


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
