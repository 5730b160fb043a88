"""/admin/errors: failures grouped by cause (``app/error_groups.py``), each with
a sample traceback, a link to its jobs and "Retry this group"."""

from __future__ import annotations

from flask import render_template, request
from sqlalchemy import select

from app import error_groups
from app.admin import live
from app.admin.blueprint import admin
from app.db import db
from app.models import JobAttempt
from app.states import JobStatus
from app.web.session import admin_required

# The states whose errors a group can gather: failed for good, or failing still.
GROUPED = (JobStatus.FAILED, JobStatus.RETRYING)


@admin.get("/errors")
@admin_required
def errors():
    status = request.args.get("status", JobStatus.FAILED)
    if status not in GROUPED:
        status = JobStatus.FAILED
    found = error_groups.groups(status=status)
    version = live.version_of(status, [(g.group, g.count, g.last_seen) for g in found])
    return live.conditional(
        version,
        lambda version: render_template(
            "admin/errors.html",
            version=version,
            groups=found,
            status=status,
            statuses=GROUPED,
            tracebacks=_tracebacks([group.sample_job_id for group in found]),
        ),
    )


def _tracebacks(job_ids: list[str]) -> dict[str, str | None]:
    """The newest recorded traceback of each sample job, in one query."""
    rows = db.session.execute(
        select(JobAttempt.job_id, JobAttempt.traceback)
        .where(JobAttempt.job_id.in_(job_ids), JobAttempt.traceback.is_not(None))
        .order_by(JobAttempt.job_id, JobAttempt.attempt)
    )
    return {job_id: traceback for job_id, traceback in rows}
