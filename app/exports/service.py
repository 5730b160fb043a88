"""Exports: requesting one, and running it.

``run`` streams rows in keyset batches (short queries, no long transaction,
flat memory) into the format's writer, reports progress about twice a second
(the job's percentage and the export's rows written so far, in one write),
and writes to a temporary file that is renamed into EXPORT_DIR only when
complete. In the same transaction as the export's success it queues the email
that delivers it: the pipeline is ``run_export → send_email``.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from flask import current_app
from sqlalchemy import ColumnElement, case, func, select, update
from sqlalchemy.exc import IntegrityError

from app import quotas
from app.db import changed_rows, db, utcnow
from app.email_queue import new_email
from app.exports import files, links, pg_copy
from app.exports.files import file_path  # noqa: F401  (app/api/exports.py serves it)
from app.exports.writers import WRITERS
from app.jobs import attempts, durable, outbox, outcomes, state
from app.jobs.errors import Cancelled, PermanentError
from app.jobs.kinds import HOUR_MS, JobKind, subject_row
from app.jobs.writes import one_at_a_time
from app.models import Export, Job, Post, User, new_id
from app.states import UNFINISHED_EXPORTS, ExportStatus, JobStatus

logger = logging.getLogger(__name__)

BATCH_ROWS = 5000
PROGRESS_INTERVAL_S = 0.5
COLUMNS = ("id", "body", "created_at")


class ExportNotFound(PermanentError, LookupError):
    """The message names an export that has no row; retrying cannot help."""


class ExportCancelled(Cancelled):
    """The export's job was cancelled while it ran: it stops here, with no file
    and no email."""


# What ``_succeed`` answers when a cancel came first: the file is not put in place.
CANCEL_REQUESTED = object()


class ExportAlreadyRunning(Exception):
    def __init__(self, job_id: str | None):
        super().__init__(job_id)
        self.job_id = job_id


def request_export(*, user_id: int, kind: str, format: str) -> Export:
    """Commit a queued export and its job, then publish the job; refuses with
    ExportAlreadyRunning while the user has an unfinished export of that kind,
    quotas.QuotaExceeded over USER_EXPORTS_PER_DAY or USER_EXPORT_BYTES."""
    running = _unfinished(user_id, kind)
    if running is not None:
        raise ExportAlreadyRunning(running.job_id)
    quotas.check_export(user_id)
    job = state.new_job(RUN_EXPORT, args=[], user_id=user_id)
    export = Export(
        id=new_id(),
        user_id=user_id,
        job_id=job.id,
        kind=kind,
        format=format,
        status=ExportStatus.QUEUED,
        created_at=utcnow(),
    )
    job.args = [export.id]
    db.session.add(export)
    try:
        outbox.commit_and_publish(job)
    except IntegrityError:
        # Another request got its export in first; the unique index refused ours.
        db.session.rollback()
        running = _unfinished(user_id, kind)
        raise ExportAlreadyRunning(running.job_id if running else None) from None
    return export


def unfinished() -> ColumnElement[bool]:
    """The exports whose file is still to be written (UNFINISHED_EXPORTS): at
    most one per user and kind (the unique index uq_exports_one_unfinished)."""
    return Export.status.in_(UNFINISHED_EXPORTS)


def _unfinished(user_id: int, kind: str) -> Export | None:
    return db.session.scalar(
        select(Export).where(Export.user_id == user_id, Export.kind == kind, unfinished())
    )


def mark_given_up(job_ids: Sequence[str]) -> None:
    """The export's job failed for good (the export failed) or was cancelled
    (the export is cancelled), in the same transaction."""
    job_status = select(Job.status).where(Job.id == Export.job_id).scalar_subquery()
    db.session.execute(
        update(Export)
        .where(Export.job_id.in_(job_ids), unfinished())
        .values(
            status=case(
                (job_status == JobStatus.CANCELLED, ExportStatus.CANCELLED),
                else_=ExportStatus.FAILED,
            ),
            finished_at=utcnow(),
        )
    )


def mark_queued(job_ids: Sequence[str]) -> None:
    """The export's job was retried by hand. Raises
    IntegrityError when the user has started another export of the same kind
    meanwhile: the unique index allows one unfinished export."""
    db.session.execute(
        update(Export)
        .where(
            Export.job_id.in_(job_ids),
            Export.status.in_((ExportStatus.FAILED, ExportStatus.CANCELLED)),
        )
        .values(status=ExportStatus.QUEUED, rows=None, finished_at=None)
    )


def run(export_id: str) -> None:
    """Write the export's file and queue its email; safe to run twice.

    Each attempt writes a partial file of its own (named by its claim), so an
    attempt never touches another's, even one still running after losing its
    lease. Only the attempt that still owns the job renames its file into place
    (whole: a rename is atomic), records the export's success and queues its
    email, all under one check of its claim (``_succeed``): an attempt that was
    paused past its lease and taken over never replaces the new owner's file."""
    claim = attempts.current_claim.get()
    export = db.session.get(Export, export_id)
    if export is None:
        raise ExportNotFound(export_id)
    if export.status not in UNFINISHED_EXPORTS:
        return  # finished already (a redelivered message): neither run nor email again
    user_id, fmt = export.user_id, export.format
    durable.write(_mark_running, export_id)

    files.partial_dir().mkdir(parents=True, exist_ok=True)
    partial = files.partial_path(export_id, claim.token if claim else new_id(), fmt)
    name = files.finished_name(export_id, fmt)
    progress = _Progress(claim, total=_count_posts(user_id))
    try:
        # Readable by its owner only, whatever the umask: the writers open it as it
        # is, and the rename into place keeps the mode.
        os.close(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        if fmt == "csv" and db.engine.dialect.name == "postgresql":
            pg_copy.write_posts_csv(str(partial), user_id, progress.advance)
        else:
            WRITERS[fmt](str(partial), COLUMNS, progress.track(_post_batches(user_id)))
        size = partial.stat().st_size
        written = WrittenFile(export_id, claim, partial, rows=progress.rows, size=size, name=name)
        message = durable.write(_succeed, written)
        if message is CANCEL_REQUESTED:
            raise ExportCancelled(export_id)
    finally:
        partial.unlink(missing_ok=True)
    if message is not None:
        outbox.publish(message)


@one_at_a_time
def _mark_running(export_id: str) -> None:
    db.session.execute(
        update(Export)
        .where(Export.id == export_id, Export.status == ExportStatus.QUEUED)
        .values(status=ExportStatus.RUNNING)
    )


@dataclass(frozen=True)
class WrittenFile:
    """An attempt's whole file, waiting in ``partial`` to be put in place."""

    export_id: str
    claim: attempts.Claim | None
    partial: Path
    rows: int
    size: int
    name: str


@one_at_a_time
def _succeed(written: WrittenFile):
    """The export's file is put in place, the export succeeded and its email is
    queued, in one transaction; the message to publish once it is committed, or
    None when this attempt no longer owns the job (or an earlier try of this
    write already committed).

    The job's row is locked while its claim is checked (PostgreSQL; SQLite's
    write lock is the database's), so no takeover commits between the check and
    the rename. A try whose commit failed after the rename finds its file in
    place already when it runs again."""
    export_id, claim, partial = written.export_id, written.claim, written.partial
    if claim is not None:
        owner = db.session.execute(
            select(Job.cancel_requested).where(attempts.owned(claim)).with_for_update()
        ).first()
        if owner is None:
            return None
        if owner.cancel_requested:  # the file is not put in place; the job ends cancelled
            return CANCEL_REQUESTED
    changed = changed_rows(
        update(Export)
        .where(Export.id == export_id, Export.status == ExportStatus.RUNNING)
        .values(
            status=ExportStatus.SUCCEEDED,
            rows=written.rows,
            bytes=written.size,
            file_name=written.name,
            finished_at=utcnow(),
        )
    )
    if not changed:
        return None
    if partial.exists():
        # Atomic: the file is whole or absent.
        os.replace(partial, files.finished_path(written.name))
    export = db.session.get_one(Export, export_id, populate_existing=True)
    email, job = _delivery_email(export)
    db.session.add(email)
    return outbox.message_for(job)


def _count_posts(user_id: int) -> int:
    count = db.session.execute(
        select(func.count()).select_from(Post).where(Post.user_id == user_id)
    ).scalar_one()
    db.session.rollback()
    return count


def _post_batches(user_id: int):
    """Rows in id order, BATCH_ROWS at a time; each batch is its own short query."""
    statement = (
        select(Post.id, Post.body, Post.created_at)
        .where(Post.user_id == user_id)
        .order_by(Post.id)
        .limit(BATCH_ROWS)
    )
    last_id = 0
    while True:
        with db.engine.connect() as connection:
            batch = (
                connection.execution_options(sqlite_begin="DEFERRED")
                .execute(statement.where(Post.id > last_id))
                .all()
            )
        if not batch:
            return
        yield batch
        last_id = batch[-1][0]


class _Progress:
    """Counts rows as batches pass and writes the job's progress at most every
    PROGRESS_INTERVAL_S: often enough to watch, rarely enough to cost nothing."""

    def __init__(self, claim, *, total: int):
        self.claim, self.total, self.rows = claim, total, 0
        self._last = time.monotonic()

    def track(self, batches):
        for batch in batches:
            yield batch
            self.advance(len(batch))

    def advance(self, rows: int) -> None:
        self.rows += rows
        now = time.monotonic()
        if now - self._last >= PROGRESS_INTERVAL_S and self.total and self.claim:
            self._last = now
            percent = min(99, self.rows * 100 // self.total)
            report = _RowsWritten(self.claim, percent, self.rows)
            if durable.write(_report_progress, report):
                raise ExportCancelled(self.claim.job_id)


@dataclass(frozen=True)
class _RowsWritten:
    claim: attempts.Claim
    percent: int
    rows: int


@one_at_a_time
def _report_progress(report: _RowsWritten) -> bool:
    """The job's progress and the export's rows written so far, in the one
    transaction (and commit) of the progress write, every PROGRESS_INTERVAL_S,
    never per batch; only while the attempt still owns the job, as its progress.
    Answers whether a cancel was requested meanwhile: the export stops there."""
    claim = report.claim
    outcomes.set_progress.one(outcomes.Progress(claim, report.percent))
    db.session.execute(
        update(Export)
        .where(
            Export.job_id == claim.job_id,
            Export.status == ExportStatus.RUNNING,
            select(Job.id).where(attempts.owned(claim)).exists(),
        )
        .values(rows=report.rows)
    )
    asked = db.session.scalar(select(Job.cancel_requested).where(attempts.owned(claim)))
    return bool(asked)


def _delivery_email(export: Export):
    user = db.session.get_one(User, export.user_id)
    label = export.format.upper()
    attach = export.bytes <= current_app.config["EXPORT_ATTACH_MAX_BYTES"]
    if attach:
        body = f"Your {export.kind} export ({label}, {export.rows} rows) is attached."
    else:
        hours = current_app.config["EXPORT_LINK_TTL_S"] // 3600
        body = (
            f"Your {export.kind} export ({label}, {export.rows} rows, {export.bytes} bytes) "
            f"is ready. Download it within {hours} hours:\n\n{links.external_url(export.id)}\n"
        )
    return new_email(
        user_id=export.user_id,
        to=user.email,
        subject=f"Your {export.kind} export ({label}) is ready",
        body=body,
        attachment=export.file_name if attach else None,
    )


RUN_EXPORT = JobKind(
    actor="run_export",
    queue="exports",
    max_retries_setting="EXPORT_MAX_RETRIES",
    # A million rows take well under two hours; Dramatiq's default 10 minutes would cut them.
    time_limit_ms=2 * HOUR_MS,
    on_given_up=mark_given_up,
    stops_when_cancelled=True,
    on_requeued=mark_queued,
    subject=lambda job: {"export": subject_row(Export, job)},
)
