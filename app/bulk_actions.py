"""Bulk actions are jobs: "retry (or cancel) every job that matches this filter"
is a ``bulk_action`` job on the maintenance queue, tracked like any other.

The request that asks for one writes its row (``BulkAction``: the action, the
filter, the time it was asked) and its audit entry, and answers at once. The
job counts what matches, then works through it oldest first in batches of
``control.BATCH``: one conditional UPDATE, one commit and one batched publish
each (``app/jobs/control.py``). Each batch's transaction also moves the job's
cursor, its counts and its ``progress``, and only while this attempt still owns
the job: a job interrupted (a killed worker) resumes after the last committed
batch, and two attempts never both count one batch. Two bulk actions over the
same jobs change each job once: the UPDATE names the state it expects.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, tuple_, update

from app import audit
from app.db import db, utcnow
from app.job_search import search
from app.jobs import attempts, control, outbox, state
from app.jobs.attempts import AttemptFenced
from app.jobs.kinds import HOUR_MS, JobKind
from app.models import AuditEntry, BulkAction, Job
from app.states import CANCELLABLE, RETRYABLE, JobStatus

logger = logging.getLogger(__name__)


def _subject(job: Job) -> dict[str, Any]:
    """What the admin's job page shows of a bulk action: its row."""
    return {"bulk": db.session.get(BulkAction, job.id)}


BULK_ACTION = JobKind(
    actor="bulk_action",
    queue="maintenance",
    time_limit_ms=HOUR_MS,
    # An attempt resumes after the last committed batch: retrying one that a lost
    # worker or a database blip stopped is safe, and loses the admin nothing.
    retries=5,
    subject=_subject,
)

# What each action may touch; without a status filter: the first of them for a
# retry (failed jobs), all of them for a cancel.
STATUSES = {"retry": tuple(RETRYABLE), "cancel": tuple(CANCELLABLE)}
DEFAULT_STATUSES = {"retry": (JobStatus.FAILED.value,), "cancel": tuple(CANCELLABLE)}


class BulkActionNotFound(LookupError):
    """A ``bulk_action`` message whose row is gone: nothing can ever run it."""


@dataclass(frozen=True)
class Filters:
    """Which jobs a bulk action touches: the admin list's filters, and an error group."""

    status: str | None = None
    actor: str | None = None
    q: str | None = None
    group: str | None = None

    def as_json(self) -> dict[str, str]:
        return {name: value for name, value in asdict(self).items() if value}


def problems(action: str, filters: Filters) -> dict[str, str]:
    """What is wrong with a bulk action's request, by field, beyond what its
    fields say alone (the API's model checks those): a status the action cannot
    touch. Empty when it can run."""
    if filters.status and filters.status not in STATUSES[action]:
        allowed = ", ".join(STATUSES[action])
        return {"status": f"a {action} can touch only jobs that are {allowed}"}
    return {}


def matching(action: str, filters: Filters, *, until: datetime | None = None) -> list:
    """The conditions of the jobs an action over ``filters`` touches (created
    until ``until``); never a bulk action itself."""
    statuses = (filters.status,) if filters.status else DEFAULT_STATUSES[action]
    where = [Job.status.in_(statuses), Job.actor != BULK_ACTION.actor]
    if until is not None:
        where.append(Job.created_at <= until)
    if filters.actor:
        where.append(Job.actor == filters.actor)
    if filters.q:
        where.append(search(filters.q))
    if filters.group:
        where.append(Job.error_group == filters.group)
    return where


def count(action: str, filters: Filters) -> int:
    """How many jobs the action would touch now: what the confirmation says."""
    return db.session.scalar(select(func.count()).where(*matching(action, filters))) or 0


def start(action: str, filters: Filters, *, user_id: int | None) -> Job:
    """Queue a bulk action, with its row and its audit entry, in one commit;
    then publish it. ``problems`` must be empty."""
    job = state.new_job(BULK_ACTION, args=[], user_id=user_id)
    job.args = [job.id]
    entry = audit.record(f"bulk_{action}", filters.as_json(), {"job_id": job.id})
    db.session.flush()
    db.session.add(
        BulkAction(
            job_id=job.id,
            user_id=user_id,
            action=action,
            filters=filters.as_json(),
            until=job.created_at,
            audit_id=entry.id,
        )
    )
    outbox.commit_and_publish(job)
    logger.info("bulk %s %s queued as job %s", action, filters.as_json(), job.id)
    return job


def run(job_id: str) -> dict[str, Any]:
    """Work through the bulk action's jobs from where it last got to; its result
    is ``{matched, done, skipped}``."""
    bulk = db.session.get(BulkAction, job_id)
    if bulk is None:
        raise BulkActionNotFound(job_id)
    filters = Filters(**bulk.filters)
    where = matching(bulk.action, filters, until=bulk.until)
    if bulk.matched is None:
        bulk.matched = db.session.scalar(select(func.count()).where(*where)) or 0
        db.session.commit()
    act = control.retry_many if bulk.action == "retry" else control.cancel_many
    try:
        while rows := _next_batch(bulk, where):
            act([row.id for row in rows], also=_Advance(bulk, len(rows), rows[-1]))
            db.session.refresh(bulk)
    except AttemptFenced:
        db.session.rollback()
        raise
    result = {
        "matched": bulk.matched,
        "done": bulk.done,
        "skipped": max(bulk.skipped, bulk.matched - bulk.done),
    }
    _record_outcome(bulk, result)
    return result


def _next_batch(bulk: BulkAction, where: list) -> list:
    query = select(Job.id, Job.created_at).where(*where)
    if bulk.after_created_at is not None:
        query = query.where(
            tuple_(Job.created_at, Job.id) > tuple_(bulk.after_created_at, bulk.after_id)
        )
    rows = db.session.execute(query.order_by(Job.created_at, Job.id).limit(control.BATCH)).all()
    return list(rows)


class _Advance:
    """The bulk action's own write in each batch's transaction: its counts and
    cursor, and its job's progress, while its attempt owns the job."""

    def __init__(self, bulk: BulkAction, size: int, last):
        self.job_id, self.matched, self.size, self.last = bulk.job_id, bulk.matched, size, last

    def __call__(self, changed: list[str]) -> None:
        row = db.session.execute(
            update(BulkAction)
            .where(BulkAction.job_id == self.job_id)
            .values(
                done=BulkAction.done + len(changed),
                skipped=BulkAction.skipped + self.size - len(changed),
                after_created_at=self.last.created_at,
                after_id=self.last.id,
            )
            .returning(BulkAction.done, BulkAction.skipped)
        ).one()
        claim = attempts.current_claim.get()
        if claim is None:  # run outside a worker (a test): no attempt to check
            return
        percent = min(99, (row.done + row.skipped) * 100 // max(1, self.matched or 0))
        owned = db.session.execute(
            update(Job).where(attempts.owned(claim)).values(progress=percent)
        )
        if not owned.rowcount:  # type: ignore[attr-defined]
            raise AttemptFenced(f"bulk action {self.job_id} was taken over")


def _record_outcome(bulk: BulkAction, result: dict[str, Any]) -> None:
    if bulk.audit_id is not None:
        entry = db.session.get(AuditEntry, bulk.audit_id)
        if entry is not None:
            entry.detail = {**entry.detail, **result, "finished_at": utcnow().isoformat()}
    db.session.commit()
    logger.info("bulk %s job %s ended: %s", bulk.action, bulk.job_id, result)
