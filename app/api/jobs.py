from flask import g, jsonify, request
from sqlalchemy.orm import selectinload

from app.api import api
from app.auth import token_required
from app.db import db
from app.errors import ApiError
from app.jobs import control
from app.jobs.listing import BadCursor, encode_cursor, newest_first
from app.models import JOB_STATUSES, Job

DEFAULT_LIMIT = 20
MAX_LIMIT = 100


def _iso(value):
    return value.isoformat() if value else None


def job_to_dict(job: Job, *, admin: bool) -> dict:
    history = []
    for attempt in job.history:
        entry = {
            "attempt": attempt.attempt,
            "started_at": _iso(attempt.started_at),
            "finished_at": _iso(attempt.finished_at),
            "outcome": attempt.outcome,
            "error": (
                {"type": attempt.error_type, "message": attempt.error_message}
                if attempt.error_type or attempt.error_message
                else None
            ),
        }
        if admin:
            entry["traceback"] = attempt.traceback
        history.append(entry)
    return {
        "id": job.id,
        "actor": job.actor,
        "queue": job.queue,
        "status": job.status,
        "progress": job.progress,
        "attempts": job.attempts,
        "max_retries": job.max_retries,
        "created_at": _iso(job.created_at),
        "started_at": _iso(job.started_at),
        "finished_at": _iso(job.finished_at),
        "next_retry_at": _iso(job.next_retry_at),
        "error": {"type": job.error_type, "message": job.error_message} if job.error_type else None,
        "result": job.result,
        "history": history,
    }


@api.get("/jobs/<job_id>")
@token_required
def get_job(job_id: str):
    job = db.session.get(Job, job_id)
    if job is None or not (g.user.is_admin or job.user_id == g.user.id):
        raise ApiError(404, "no such job")
    return jsonify(job_to_dict(job, admin=g.user.is_admin))


@api.get("/jobs")
@token_required
def list_jobs():
    errors = {}
    status = request.args.get("status") or None
    if status is not None and status not in JOB_STATUSES:
        errors["status"] = "must be one of " + ", ".join(JOB_STATUSES)
    actor = request.args.get("actor") or None
    limit = request.args.get("limit", str(DEFAULT_LIMIT))
    if not (limit.isascii() and limit.isdigit()) or not 1 <= int(limit) <= MAX_LIMIT:
        errors["limit"] = f"must be an integer from 1 to {MAX_LIMIT}"
    if errors:
        raise ApiError(422, "invalid query parameters", errors)

    query = db.select(Job).options(selectinload(Job.history))
    if not g.user.is_admin:
        query = query.where(Job.user_id == g.user.id)
    if status:
        query = query.where(Job.status == status)
    if actor:
        query = query.where(Job.actor == actor)
    try:
        query = newest_first(query, cursor=request.args.get("cursor"), limit=int(limit) + 1)
    except BadCursor:
        raise ApiError(
            422, "invalid query parameters", {"cursor": "is not a valid cursor"}
        ) from None
    jobs = db.session.scalars(query).all()
    page = jobs[: int(limit)]
    next_cursor = encode_cursor(page[-1]) if len(jobs) > int(limit) else None
    return jsonify(
        items=[job_to_dict(j, admin=g.user.is_admin) for j in page], next_cursor=next_cursor
    )


def _admin_change(job_id: str, action, allowed: str) -> None:
    """Run a job state change for an admin, as the contract's status codes say."""
    if not g.user.is_admin:
        raise ApiError(403, "admins only")
    try:
        action(job_id)
    except control.JobNotFound:
        raise ApiError(404, "no such job") from None
    except control.JobStateConflict as conflict:
        raise ApiError(
            409, f"only {allowed} jobs qualify; this one is {conflict.status}", job_id=job_id
        ) from None


@api.post("/jobs/<job_id>/retry")
@token_required
def retry_job(job_id: str):
    _admin_change(job_id, control.retry, "failed or cancelled")
    return jsonify(job_id=job_id, status="queued"), 202


@api.post("/jobs/<job_id>/cancel")
@token_required
def cancel_job(job_id: str):
    _admin_change(job_id, control.cancel, "queued, retrying or failed")
    return jsonify(job_id=job_id, status="cancelled"), 200
