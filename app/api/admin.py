"""The admin's API: bulk actions, error groups, the audit log and queues."""

from __future__ import annotations

from flask import g

from app import audit, bulk_actions, error_groups, queues
from app.api.blueprint import api
from app.api.input import AuditQuery, BulkActionRequest, ErrorsQuery
from app.api.output import (
    AuditEntry,
    AuditPage,
    BulkActionQueued,
    ErrorGroup,
    ErrorGroups,
    QueuePaused,
    QueueState,
    QueueStates,
)
from app.api.spec import operation, respond
from app.auth import token_required
from app.errors import ApiError
from app.jobs.listing import BadCursor
from app.states import JobStatus


def _admins_only() -> None:
    if not g.user.is_admin:
        raise ApiError(403, "admins only")


@api.post("/jobs/bulk")
@token_required
@operation(
    "Retry or cancel every job that matches a filter, as a job of its own (admins)",
    body=BulkActionRequest,
    responses={202: BulkActionQueued},
    errors=(400, 401, 403, 422, 503),
)
def bulk_action(body: BulkActionRequest):
    _admins_only()
    filters = bulk_actions.Filters(
        status=body.status.value if body.status else None,
        actor=body.actor,
        q=body.q,
        group=body.group,
    )
    wrong = bulk_actions.problems(body.action, filters)
    if wrong:
        raise ApiError(422, "invalid fields", wrong)
    job = bulk_actions.start(body.action, filters, user_id=g.user.id)
    return respond(BulkActionQueued(job_id=job.id, status=JobStatus.QUEUED), 202)


@api.get("/errors")
@token_required
@operation(
    "Failures grouped by actor, error type and masked message, largest first (admins)",
    query=ErrorsQuery,
    responses={200: ErrorGroups},
    errors=(401, 403, 422, 503),
)
def list_errors(query: ErrorsQuery):
    _admins_only()
    found = error_groups.groups(status=query.status, actor=query.actor)
    return respond(ErrorGroups(items=[ErrorGroup(**group.as_json()) for group in found]))


@api.get("/audit")
@token_required
@operation(
    "The audit log of admin actions, newest first (admins)",
    query=AuditQuery,
    responses={200: AuditPage},
    errors=(401, 403, 422, 503),
)
def list_audit(query: AuditQuery):
    _admins_only()
    try:
        found = audit.newest(limit=query.limit, cursor=query.cursor)
    except BadCursor:
        bad = {"cursor": "is not a valid cursor"}
        raise ApiError(422, "invalid query parameters", bad) from None
    return respond(
        AuditPage(
            items=[AuditEntry(**audit.as_json(entry)) for entry in found.items],
            next_cursor=found.next_cursor,
        )
    )


@api.get("/queues")
@token_required
@operation(
    "Every queue: paused or not, its jobs queued, running, retrying and scheduled (admins)",
    responses={200: QueueStates},
    errors=(401, 403, 503),
)
def list_queues():
    _admins_only()
    return respond(QueueStates(items=[QueueState(**q.as_json()) for q in queues.states()]))


@api.post("/queues/<name>/pause")
@token_required
@operation(
    "Pause a queue: no new attempt starts on it until it is resumed (admins)",
    responses={200: QueuePaused},
    errors=(401, 403, 404, 503),
)
def pause_queue(name: str):
    return _change_queue(name, queues.pause, paused=True)


@api.post("/queues/<name>/resume")
@token_required
@operation(
    "Resume a paused queue: its jobs are published again within a relay interval (admins)",
    responses={200: QueuePaused},
    errors=(401, 403, 404, 503),
)
def resume_queue(name: str):
    return _change_queue(name, queues.resume, paused=False)


def _change_queue(name: str, change, *, paused: bool):
    _admins_only()
    try:
        change(name)
    except queues.UnknownQueue:
        raise ApiError(404, "no such queue") from None
    return respond(QueuePaused(name=name, paused=paused))
