"""Failures grouped by cause: a job's actor, its error's type and its message
with what differs from one job to the next masked (addresses, ids, numbers),
so that 20,000 "451 try again later" for 20,000 recipients are one group.

The group is a short hash written with the error (``jobs.error_group``), so
grouping a million jobs reads one partial index instead of masking every
message again. Masked: email addresses, UUIDs and long hex ids, IP addresses,
decimals, and numbers of four digits or more (SMTP reply codes, enhanced
status codes and small counts stay: they are part of the cause).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select

from app.db import db
from app.models import Job
from app.states import JobStatus

_MASKS = [
    (re.compile(r"[\w.!#$%&'*+/=?^`{|}~-]+@[\w-]+(\.[\w-]+)+"), "<address>"),
    (
        re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.I),
        "<id>",
    ),
    (re.compile(r"\b\d{1,3}(\.\d{1,3}){3}(:\d+)?\b"), "<ip>"),
    (re.compile(r"\b(?=[0-9a-f]*\d)[0-9a-f]{12,}\b", re.I), "<id>"),
    # Decimals, but not an SMTP enhanced status code such as 4.3.0: it names the cause.
    (re.compile(r"\d{4,}|(?<![\d.])\d+\.\d+(?![\d.])"), "<n>"),
]

# Groups an answer lists at most: past it, the rest are small ones.
MAX_GROUPS = 100


def masked(message: str | None) -> str:
    text = message or ""
    for pattern, replacement in _MASKS:
        text = pattern.sub(replacement, text)
    return text


def group_of(actor: str, error_type: str | None, message: str | None) -> str:
    """The group of an error: 16 hex digits, the same for the same cause."""
    key = "\x1f".join((actor, error_type or "", masked(message)))
    return hashlib.blake2b(key.encode(), digest_size=8).hexdigest()


@dataclass(frozen=True)
class ErrorGroup:
    group: str
    actor: str
    error_type: str | None
    message: str
    count: int
    first_seen: datetime | None
    last_seen: datetime | None
    sample_job_id: str

    def as_json(self) -> dict:
        return {
            "group": self.group,
            "actor": self.actor,
            "error_type": self.error_type,
            "message": self.message,
            "count": self.count,
            "first_seen": self.first_seen.isoformat() if self.first_seen else None,
            "last_seen": self.last_seen.isoformat() if self.last_seen else None,
            "sample_job_id": self.sample_job_id,
        }


def groups(*, status: str = JobStatus.FAILED, actor: str | None = None) -> list[ErrorGroup]:
    """The error groups of the jobs in ``status`` (of ``actor``), largest first:
    one GROUP BY over the partial index, then the sample job of each group."""
    where = [Job.status == status, Job.error_group.is_not(None)]
    if actor:
        where.append(Job.actor == actor)
    counted = db.session.execute(
        select(
            Job.error_group,
            func.count().label("jobs"),
            func.min(func.coalesce(Job.finished_at, Job.created_at)).label("first_seen"),
            func.max(func.coalesce(Job.finished_at, Job.created_at)).label("last_seen"),
            func.max(Job.id).label("sample_job_id"),
        )
        .where(*where)
        .group_by(Job.error_group)
        .order_by(func.count().desc(), Job.error_group)
        .limit(MAX_GROUPS)
    ).all()
    samples = {
        row.id: row
        for row in db.session.execute(
            select(Job.id, Job.actor, Job.error_type, Job.error_message).where(
                Job.id.in_([row.sample_job_id for row in counted])
            )
        )
    }
    return [
        ErrorGroup(
            group=row.error_group,
            actor=samples[row.sample_job_id].actor,
            error_type=samples[row.sample_job_id].error_type,
            message=masked(samples[row.sample_job_id].error_message),
            count=row.jobs,
            first_seen=row.first_seen,
            last_seen=row.last_seen,
            sample_job_id=row.sample_job_id,
        )
        for row in counted
    ]
