"""Cleanup: old finished jobs (with their history and their emails), expired
export files, stray export files, expired API tokens and forgotten sign-in
failures. Deletes in
small batches, each its own transaction, so that a million old rows never lock
the tables for long.

EXPORT_DIR may be shared with anything (even ``instance/``, beside the
database): only a file named as an export names its file, for an export that
exists and does not own it (any more), is ever deleted there."""

from __future__ import annotations

import time
from datetime import timedelta

from flask import current_app
from sqlalchemy import delete, or_, select, update

from app import login_throttle
from app.db import db, utcnow
from app.exports import files
from app.exports.service import unfinished
from app.jobs.kinds import HOUR_MS, JobKind
from app.maintenance.service import Service, Summary
from app.models import ApiToken, AuditEntry, Email, Export, Job
from app.states import ExportStatus, JobStatus

# Periodic and idempotent: never retried, the next tick is the retry.
CLEANUP = JobKind(actor="cleanup", queue="maintenance", time_limit_ms=HOUR_MS)

BATCH = 1000
# A partial file this old belongs to no live attempt (exports time out sooner).
STRAY_AFTER_S = 3 * 3600


def cleanup() -> Summary:
    return {
        "jobs_deleted": delete_old_jobs(),
        "emails_deleted": delete_orphaned_emails(),
        "exports_expired": expire_exports(),
        "files_removed": remove_stray_files(),
        "tokens_deleted": delete_expired_tokens(),
        "throttle_rows_pruned": login_throttle.prune(),
        "audit_entries_deleted": delete_old_audit_entries(),
    }


SERVICE = Service("cleanup", "CLEANUP_INTERVAL_S", cleanup, kind=CLEANUP)


def delete_old_jobs() -> int:
    config, now = current_app.config, utcnow()
    finished_before = now - timedelta(days=config["JOB_RETENTION_DAYS"])
    failed_before = now - timedelta(days=config["FAILED_JOB_RETENTION_DAYS"])
    old = or_(
        (
            Job.status.in_((JobStatus.SUCCEEDED, JobStatus.CANCELLED))
            & (Job.finished_at < finished_before)
        ),
        ((Job.status == JobStatus.FAILED) & (Job.finished_at < failed_before)),
    )
    deleted = 0
    while True:
        # Locked (PostgreSQL; SQLite's write lock is the database's) so that no
        # job is retried between deleting its emails and deleting it.
        ids = db.session.scalars(
            select(Job.id).where(old).limit(BATCH).with_for_update(skip_locked=True)
        ).all()
        if not ids:
            db.session.rollback()
            return deleted
        # An email goes with its job, body and all: past its job it is only
        # weight. (Deleting the job first would set the emails' job_id to NULL.)
        # job_attempts go with the jobs (ON DELETE CASCADE); exports keep their
        # rows with job_id set to NULL.
        db.session.execute(delete(Email).where(Email.job_id.in_(ids)))
        db.session.execute(delete(Job).where(Job.id.in_(ids), old))
        db.session.commit()
        deleted += len(ids)


def delete_orphaned_emails() -> int:
    """Emails whose job is gone (deleted before cleanup took emails with their
    jobs) and that are older than JOB_RETENTION_DAYS: an email is always
    created with its job, so it has none only once that job was deleted."""
    cutoff = utcnow() - timedelta(days=current_app.config["JOB_RETENTION_DAYS"])
    orphaned = Email.job_id.is_(None) & (Email.created_at < cutoff)
    deleted = 0
    while True:
        ids = db.session.scalars(select(Email.id).where(orphaned).limit(BATCH)).all()
        if not ids:
            db.session.rollback()
            return deleted
        db.session.execute(delete(Email).where(Email.id.in_(ids), orphaned))
        db.session.commit()
        deleted += len(ids)


def expire_exports() -> int:
    cutoff = utcnow() - timedelta(seconds=current_app.config["EXPORT_LINK_TTL_S"])
    expired = 0
    while True:
        batch = db.session.execute(
            select(Export.id, Export.file_name)
            .where(Export.status == ExportStatus.SUCCEEDED, Export.finished_at < cutoff)
            .limit(BATCH)
        ).all()
        if not batch:
            db.session.rollback()
            return expired
        for _, file_name in batch:
            if file_name:
                files.finished_path(file_name).unlink(missing_ok=True)
        db.session.execute(
            update(Export)
            .where(Export.id.in_([export_id for export_id, _ in batch]))
            .values(status=ExportStatus.EXPIRED)
        )
        db.session.commit()
        expired += len(batch)


def delete_expired_tokens() -> int:
    deleted = 0
    while True:
        ids = db.session.scalars(
            select(ApiToken.id).where(ApiToken.expires_at < utcnow()).limit(BATCH)
        ).all()
        if not ids:
            db.session.rollback()
            return deleted
        db.session.execute(delete(ApiToken).where(ApiToken.id.in_(ids)))
        db.session.commit()
        deleted += len(ids)


def delete_old_audit_entries() -> int:
    """Audit entries older than AUDIT_RETENTION_DAYS, oldest first, in batches."""
    cutoff = utcnow() - timedelta(days=current_app.config["AUDIT_RETENTION_DAYS"])
    deleted = 0
    while True:
        ids = db.session.scalars(
            select(AuditEntry.id).where(AuditEntry.at < cutoff).order_by(AuditEntry.id).limit(BATCH)
        ).all()
        if not ids:
            db.session.rollback()
            return deleted
        db.session.execute(delete(AuditEntry).where(AuditEntry.id.in_(ids)))
        db.session.commit()
        deleted += len(ids)


def _disowned(names: dict[str, str]) -> set[str]:
    """Of ``{file name: export id}``, the files whose export exists and does not own them."""
    disowned = set()
    by_id = {export_id: name for name, export_id in names.items()}
    ids = list(by_id)
    for start in range(0, len(ids), BATCH):
        rows = db.session.execute(
            select(Export.id, Export.status, Export.file_name).where(
                Export.id.in_(ids[start : start + BATCH])
            )
        ).all()
        for export_id, status, file_name in rows:
            name = by_id[export_id]
            if status != ExportStatus.SUCCEEDED or file_name != name:
                disowned.add(name)
    db.session.rollback()
    return disowned


def remove_stray_files() -> int:
    """Partial files no attempt is writing, and export files their export disowns."""
    directory = files.export_dir()
    if not directory.is_dir():
        return 0
    being_written = set(db.session.scalars(select(Export.id).where(unfinished())).all())
    db.session.rollback()
    now, removed = time.time(), 0
    named = {
        path.name: export_id
        for path in directory.iterdir()
        if (export_id := files.finished_export_id(path.name)) and path.is_file()
    }
    for name in _disowned(named):
        path = directory / name
        if now - path.stat().st_mtime > 60:  # not one a running export renamed in just now
            path.unlink(missing_ok=True)
            removed += 1
    # .partial is the exports' own directory: everything in it is an attempt's.
    partial = files.partial_dir()
    for path in partial.glob("*") if partial.is_dir() else ():
        age = now - path.stat().st_mtime
        if files.partial_export_id(path.name) not in being_written or age > STRAY_AFTER_S:
            path.unlink(missing_ok=True)
            removed += 1
    return removed
