"""/admin/jobs: every job by status, filtered, searched and paged newest first,
with Retry and Cancel for the selected rows, or for all that match as a bulk
action (after a confirmation that says how many); and each job's detail page
with its attempts, and a bulk action's progress."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from flask import abort, flash, g, redirect, render_template, request, url_for
from sqlalchemy import func, literal, select, union_all
from sqlalchemy.orm import selectinload

from app import audit, bulk_actions
from app.admin import live
from app.admin.blueprint import COUNT_CAP, PAGE_SIZE, admin
from app.db import db
from app.job_search import search
from app.jobs import control, kinds
from app.jobs.listing import BadCursor, page
from app.models import Job, User
from app.states import CANCELLABLE, RETRYABLE, JobStatus
from app.web.session import admin_required


@dataclass(frozen=True)
class Filters:
    """The list's filters, read from the query string or the action form."""

    status: str = ""
    actor: str = ""
    q: str = ""
    # An error group (app/error_groups.py): the jobs that failed for one cause.
    group: str = ""

    @classmethod
    def read(cls, values) -> Filters:
        status = values.get("status", "").strip()
        group = values.get("group", "").strip()
        return cls(
            status=status if status in tuple(JobStatus) else "",
            actor=values.get("actor", "").strip(),
            q=values.get("q", "").strip(),
            group=group if re.fullmatch(r"[0-9a-f]{16}", group) else "",
        )

    def args(self, **changes) -> dict:
        """Query-string arguments for a link, leaving out the empty ones."""
        values = {
            "status": self.status,
            "actor": self.actor,
            "q": self.q,
            "group": self.group,
            **changes,
        }
        return {name: value for name, value in values.items() if value}

    def conditions(self, *, with_status: bool = True) -> list:
        where = []
        if with_status and self.status:
            where.append(Job.status == self.status)
        if self.actor:
            where.append(Job.actor == self.actor)
        if self.q:
            where.append(search(self.q))
        if self.group:
            where.append(Job.error_group == self.group)
        return where

    @property
    def retry_all_status(self) -> str | None:
        """Which jobs "Retry all matching" retries: the failed ones, or the
        cancelled ones while the list shows only those; None when the list can
        hold no retryable job."""
        if not self.status:
            return JobStatus.FAILED
        return self.status if self.status in RETRYABLE else None

    @property
    def cancel_all_statuses(self) -> tuple[str, ...]:
        """Which jobs "Cancel all matching" cancels: every cancellable one, or
        those of the list's status; none when the list can hold no such job."""
        if not self.status:
            return tuple(CANCELLABLE)
        return (self.status,) if self.status in CANCELLABLE else ()

    def bulk(self, action: str) -> bulk_actions.Filters | None:
        """The bulk action's filter for "Retry (Cancel) all matching"; None when
        the list can hold no job the action may touch."""
        if action == "retry":
            status = self.retry_all_status
            if status is None:
                return None
        else:
            if not self.cancel_all_statuses:
                return None
            status = self.status or None
        return bulk_actions.Filters(
            status=status, actor=self.actor or None, q=self.q or None, group=self.group or None
        )


@dataclass(frozen=True)
class Counts:
    """How many jobs in each status match the actor and search filters, whether
    those are lower bounds, and, for a search with no more than COUNT_CAP
    matches, the matching jobs' ids (the page is then read by key)."""

    by_status: dict[str, int]
    partial: bool
    matched: list[str] | None = None


def status_counts(filters: Filters) -> Counts:
    """Exact counts of a million rows would cost a full scan on every page view,
    so each count stops past COUNT_CAP (shown as "1,000+"). With a search, one
    capped pass over the matches counts them all (a pass per status would
    search six times); past the cap, the numbers are lower bounds. One round
    trip either way."""
    where = filters.conditions(with_status=False)
    if filters.q:
        rows = db.session.execute(
            select(Job.id, Job.status).where(*where).limit(COUNT_CAP + 1)
        ).all()
        counts: dict[str, int] = dict.fromkeys(JobStatus, 0)
        for _, status in rows:
            counts[status] += 1
        if len(rows) > COUNT_CAP:
            return Counts(counts, partial=True)
        wanted = [
            job_id for job_id, status in rows if status == filters.status or not filters.status
        ]
        return Counts(counts, partial=False, matched=wanted)
    capped = [
        select(literal(status.value).label("status"), func.count().label("n")).select_from(
            select(Job.id).where(Job.status == status, *where).limit(COUNT_CAP + 1).subquery()
        )
        for status in JobStatus
    ]
    return Counts({status: n for status, n in db.session.execute(union_all(*capped))}, False)


@admin.get("/jobs")
@admin_required
def jobs():
    filters = Filters.read(request.args)
    cursor = request.args.get("cursor") or None
    counted = status_counts(filters)
    counts, partial = counted.by_status, counted.partial
    if counted.matched is not None:
        # Every match is in hand: the page reads them by key, not by searching again.
        query = select(Job).where(Job.id.in_(counted.matched))
    else:
        query = select(Job).where(*filters.conditions())
    try:
        found = page(query, cursor=cursor, limit=PAGE_SIZE)
    except BadCursor:
        abort(400, "That page link is not valid any more; start again from the newest jobs.")
    retry_all = filters.retry_all_status
    cancel_all_count = sum(counts[status] for status in filters.cancel_all_statuses)
    # A job of an actor the app does not run is still found by searching.
    actors = list(kinds.registry())
    if filters.actor and filters.actor not in actors:
        actors.append(filters.actor)
    version = live.version_of(
        [(job.id, job.status, job.attempts, job.progress) for job in found.items], counts
    )
    return live.conditional(
        version,
        lambda version: render_template(
            "admin/jobs.html",
            version=version,
            jobs=found.items,
            filters=filters,
            cursor=cursor,
            older=found.next_cursor,
            counts=counts,
            partial=partial,
            total=sum(counts.values()),
            statuses=tuple(JobStatus),
            actors=actors,
            retry_all_status=retry_all,
            retry_all_count=counts[retry_all] if retry_all else 0,
            cancel_all_count=cancel_all_count,
        ),
    )


def _summary(verb: str, done: int, skipped: int, allowed: str) -> str:
    message = f"{verb} {done} job{'' if done == 1 else 's'}"
    if skipped:
        message += f"; skipped {skipped} that {'was' if skipped == 1 else 'were'} not {allowed}"
    return message + "."


@admin.post("/jobs/actions")
@admin_required
def job_actions():
    filters = Filters.read(request.form)
    back = redirect(
        url_for("admin.jobs", **filters.args(cursor=request.form.get("cursor", ""))), 303
    )
    action = request.form.get("action")
    if action in ("retry_all", "cancel_all"):
        return _all_matching(action.removesuffix("_all"), filters, back)

    job_ids = list(dict.fromkeys(request.form.getlist("job_id")))
    if action not in ("retry", "cancel"):
        abort(400, "Unknown action.")
    if not job_ids:
        flash("Select at least one job first.", "error")
        return back
    if len(job_ids) > control.BATCH:
        abort(400, f"Select at most {control.BATCH} jobs.")
    trail = audit.Trail(action, {"job_ids": job_ids}, size=len(job_ids))
    if action == "retry":
        retried, skipped = control.retry_many(job_ids, also=trail)
        flash(_summary("Retried", retried, skipped, "failed or cancelled"))
    else:
        cancelled, skipped = control.cancel_many(job_ids, also=trail)
        flash(_summary("Cancelled", cancelled, skipped, "queued, retrying or failed"))
    return back


DONE = {"retry": "retried", "cancel": "cancelled"}


def _all_matching(action: str, filters: Filters, back):
    """Retry (or Cancel) all matching: first a confirmation that says how many
    jobs the action will touch, then, once confirmed, a bulk action (a job of
    its own) whose page shows its progress."""
    bulk_filters = filters.bulk(action)
    if bulk_filters is None:
        flash(f"No job in this list can be {DONE[action]}.", "error")
        return back
    if request.form.get("confirmed") != "yes":
        return render_template(
            "admin/confirm.html",
            action=action,
            filters=filters,
            described=bulk_filters.as_json(),
            count=bulk_actions.count(action, bulk_filters),
            back=request.form.get("back") or url_for("admin.jobs", **filters.args()),
        )
    job = bulk_actions.start(action, bulk_filters, user_id=g.user.id)
    flash(f"Bulk {action} started: this page shows how far it has got.")
    return redirect(url_for("admin.job", job_id=job.id), 303)


@admin.get("/jobs/<job_id>")
@admin_required
def job(job_id: str):
    found = db.session.get(Job, job_id, options=[selectinload(Job.recorded_attempts)])
    if found is None:
        abort(404)
    subject = kinds.of(found.actor).subject
    about = subject(found) if subject else {}
    version = live.version_of(
        found.status,
        found.progress,
        found.attempts,
        found.series,
        found.finished_at,
        found.next_retry_at,
        [(row.attempt, row.outcome) for row in found.recorded_attempts],
        {name: _values(row) for name, row in about.items()},
    )
    owner = db.session.get(User, found.user_id) if found.user_id is not None else None
    return live.conditional(
        version,
        lambda version: render_template(
            "admin/job.html",
            version=version,
            job=found,
            owner=owner,
            **about,
            arguments=json.dumps(found.args, indent=2, ensure_ascii=False),
            result=json.dumps(found.result, indent=2, ensure_ascii=False) if found.result else None,
            can_retry=found.status in RETRYABLE,
            can_cancel=found.status in CANCELLABLE
            or (found.status == JobStatus.RUNNING and kinds.of(found.actor).stops_when_cancelled),
        ),
    )


def _values(row: object) -> object:
    """What a page shows of a row next to its job (an email, an export, a bulk
    action): its columns, for the page's version."""
    table = getattr(row, "__table__", None)
    if table is None:
        return row
    return tuple(getattr(row, column.key) for column in table.columns)


@admin.post("/jobs/<job_id>/retry")
@admin_required
def retry_job(job_id: str):
    return _change(
        job_id, "retry", control.retry, "Job queued again.", "retried", "failed or cancelled"
    )


@admin.post("/jobs/<job_id>/cancel")
@admin_required
def cancel_job(job_id: str):
    return _change(
        job_id,
        "cancel",
        control.cancel,
        "Job cancelled.",
        "cancelled",
        "queued, retrying or failed",
    )


@admin.post("/jobs/<job_id>/run-now")
@admin_required
def run_job_now(job_id: str):
    return _change(job_id, "run_now", control.run_now, "Job queued now.", "run", "scheduled")


def _change(job_id: str, name: str, action, done: str, verb: str, allowed: str):
    try:
        status = action(job_id, also=audit.Trail(name, {"job_ids": [job_id]}, size=1))
    except control.JobNotFound:
        abort(404)
    except control.JobStateConflict as conflict:
        flash(f"Not {verb}: the job is {conflict.status}; only {allowed} jobs can be.", "error")
    else:
        if status is JobStatus.RUNNING:  # a running export, asked to stop
            flash("Cancel requested: the job stops at its next batch, within seconds.")
        else:
            flash(done)
    return redirect(url_for("admin.job", job_id=job_id), 303)
