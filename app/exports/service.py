"""Exports: requesting one, and running it.

``run`` streams rows in keyset batches (short queries, no long transaction,
flat memory) into the format's writer, reports progress about twice a second,
and writes to a temporary file that is renamed into EXPORT_DIR only when
complete. In the same transaction as the export's success it queues the email
that delivers it: the pipeline is ``run_export → send_email``.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from flask import current_app
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from app.db import db, utcnow
from app.emails import new_email
from app.exports import links, pg_copy
from app.exports.writers import WRITERS
from app.jobs import outbox, state
from app.jobs.errors import PermanentError
from app.models import Export, Post, User, new_id

logger = logging.getLogger(__name__)

BATCH_ROWS = 5000
PROGRESS_INTERVAL_S = 0.5
COLUMNS = ("id", "body", "created_at")
PARTIAL_DIR = ".partial"


class ExportNotFound(PermanentError, LookupError):
    """The message names an export that has no row; retrying cannot help."""


class ExportAlreadyRunning(Exception):
    def __init__(self, job_id: str | None):
        super().__init__(job_id)
        self.job_id = job_id


def request_export(*, user_id: int, kind: str, format: str) -> Export:
    """Commit a queued export and its job, then publish the job; refuses with
    ExportAlreadyRunning while the user has an unfinished export of that kind."""
    running = _unfinished(user_id, kind)
    if running is not None:
        raise ExportAlreadyRunning(running.job_id)
    job = state.new_job(
        actor="run_export",
        queue="exports",
        args=[],
        max_retries=current_app.config["EXPORT_MAX_RETRIES"],
        user_id=user_id,
    )
    export = Export(
        id=new_id(),
        user_id=user_id,
        job_id=job.id,
        kind=kind,
        format=format,
        status="queued",
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


def _unfinished(user_id: int, kind: str) -> Export | None:
    return db.session.scalar(
        select(Export).where(
            Export.user_id == user_id, Export.kind == kind, Export.status.in_(("queued", "running"))
        )
    )


@state.on_given_up("run_export")
def _fail_export(job_id: str) -> None:
    db.session.execute(
        update(Export)
        .where(Export.job_id == job_id, Export.status.in_(("queued", "running")))
        .values(status="failed", finished_at=utcnow())
    )


@state.on_requeued("run_export")
def _requeue_export(job_id: str) -> None:
    """Raises IntegrityError when the user has started another export of the
    same kind meanwhile: the unique index allows one unfinished export."""
    db.session.execute(
        update(Export)
        .where(Export.job_id == job_id, Export.status == "failed")
        .values(status="queued", finished_at=None)
    )


def export_dir() -> Path:
    return Path(current_app.config["EXPORT_DIR"])


def file_path(export: Export) -> Path:
    return export_dir() / export.file_name


def run(export_id: str) -> None:
    export = db.session.get(Export, export_id)
    if export is None:
        raise ExportNotFound(export_id)
    if export.status != "queued" and export.status != "running":
        return  # finished already (a redelivered message): neither run nor email again
    user_id, job_id, fmt = export.user_id, export.job_id, export.format
    export.status = "running"
    db.session.commit()

    partial = _clean_partial_dir(export_id) / f"{export_id}.{new_id()}.{fmt}"
    progress = _Progress(job_id, total=_count_posts(user_id))
    try:
        if fmt == "csv" and db.engine.dialect.name == "postgresql":
            pg_copy.write_posts_csv(str(partial), user_id, progress.advance)
        else:
            WRITERS[fmt](str(partial), COLUMNS, progress.track(_post_batches(user_id)))
        name = f"{export_id}.{fmt}"
        os.replace(partial, export_dir() / name)  # atomic: the file is whole or absent
    finally:
        partial.unlink(missing_ok=True)

    size = (export_dir() / name).stat().st_size
    export = db.session.get(Export, export_id)
    export.status, export.rows, export.bytes = "succeeded", progress.rows, size
    export.file_name, export.finished_at = name, utcnow()
    email, job = _delivery_email(export)
    db.session.add(email)
    outbox.commit_and_publish(job)


def _clean_partial_dir(export_id: str) -> Path:
    """A killed attempt may have left its partial file: a retry starts clean."""
    directory = export_dir() / PARTIAL_DIR
    directory.mkdir(parents=True, exist_ok=True)
    for leftover in directory.glob(f"{export_id}.*"):
        leftover.unlink(missing_ok=True)
    return directory


def _count_posts(user_id: int) -> int:
    count = db.session.scalar(select(func.count()).select_from(Post).where(Post.user_id == user_id))
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

    def __init__(self, job_id: str, *, total: int):
        self.job_id, self.total, self.rows = job_id, total, 0
        self._last = time.monotonic()

    def track(self, batches):
        for batch in batches:
            yield batch
            self.advance(len(batch))

    def advance(self, rows: int) -> None:
        self.rows += rows
        now = time.monotonic()
        if now - self._last >= PROGRESS_INTERVAL_S and self.total:
            self._last = now
            state.set_progress(self.job_id, min(99, self.rows * 100 // self.total))


def _delivery_email(export: Export):
    user = db.session.get(User, export.user_id)
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
