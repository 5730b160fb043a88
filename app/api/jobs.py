from flask import g
from sqlalchemy.orm import selectinload

from app import audit
from app.api.blueprint import api
from app.api.input import JobsQuery
from app.api.output import CancelRequested, Job, JobChange, JobPage
from app.api.spec import operation, respond
from app.auth import owned_or_404, token_required
from app.db import db
from app.errors import ApiError
from app.job_search import search
from app.jobs import control
from app.jobs.listing import page
from app.models import Job as JobRow
from app.states import JobStatus


@api.get("/jobs/<job_id>")
@token_required
@operation("A job, with every attempt", responses={200: Job}, errors=(401, 404, 503))
def get_job(job_id: str):
    job = owned_or_404(JobRow, job_id, "no such job")
    return respond(Job.from_row(job, admin=g.user.is_admin))


@api.get("/jobs")
@token_required
@operation(
    "Jobs, newest first: a user's own, or all for an admin, who may also search (q)",
    query=JobsQuery,
    responses={200: JobPage},
    errors=(401, 403, 422, 503),
)
def list_jobs(query: JobsQuery):
    # The search looks in every job's errors and every email's recipient:
    # refused outright to a user rather than quietly narrowed to their own jobs,
    # so a script never mistakes "not allowed" for "nothing found".
    if query.q is not None and not g.user.is_admin:
        raise ApiError(403, "admins only")
    select = db.select(JobRow).options(selectinload(JobRow.recorded_attempts))
    if not g.user.is_admin:
        select = select.where(JobRow.user_id == g.user.id)
    if query.q and query.q.strip():
        select = select.where(search(query.q.strip()))
    if query.status:
        select = select.where(JobRow.status == query.status)
    if query.actor:
        select = select.where(JobRow.actor == query.actor)
    found = page(select, cursor=query.cursor, limit=query.limit)  # JobsQuery checked the cursor
    items = [Job.from_row(job, admin=g.user.is_admin) for job in found.items]
    return respond(JobPage(items=items, next_cursor=found.next_cursor))


def _admin_change(job_id: str, name: str, action, allowed: str):
    """Run a job state change for an admin, recorded in the audit log, answering
    403, 404 or 409 when it cannot be made."""
    if not g.user.is_admin:
        raise ApiError(403, "admins only")
    try:
        return action(job_id, also=audit.Trail(name, {"job_ids": [job_id]}, size=1))
    except control.JobNotFound:
        raise ApiError(404, "no such job") from None
    except control.JobStateConflict as conflict:
        raise ApiError(
            409, f"only {allowed} qualify; this one is {conflict.status}", job_id=job_id
        ) from None


@api.post("/jobs/<job_id>/retry")
@token_required
@operation(
    "Retry a failed or cancelled job (admins)",
    responses={202: JobChange},
    errors=(401, 403, 404, 409, 503),
)
def retry_job(job_id: str):
    _admin_change(job_id, "retry", control.retry, "failed or cancelled jobs")
    return respond(JobChange(job_id=job_id, status=JobStatus.QUEUED), 202)


@api.post("/jobs/<job_id>/cancel")
@token_required
@operation(
    "Cancel a queued, retrying or failed job; a running export stops within seconds (admins)",
    responses={200: JobChange, 202: CancelRequested},
    errors=(401, 403, 404, 409, 503),
)
def cancel_job(job_id: str):
    allowed = "queued, retrying or failed jobs and running exports"
    status = _admin_change(job_id, "cancel", control.cancel, allowed)
    if status is JobStatus.RUNNING:
        return respond(
            CancelRequested(job_id=job_id, status=JobStatus.RUNNING, cancel_requested=True), 202
        )
    return respond(JobChange(job_id=job_id, status=JobStatus.CANCELLED))
