"""Cleanup: old finished jobs (with their history), expired export files, and
stray temporary files. Deletes in small batches, each its own transaction, so
that a million old rows never lock the tables for long."""

from __future__ import annotations

import logging
import time
from datetime import timedelta

from flask import current_app
from sqlalchemy import delete, or_, select, update

from app.db import db, utcnow
from app.exports.service import PARTIAL_DIR, export_dir
from app.models import Export, Job

logger = logging.getLogger(__name__)

BATCH = 1000
# A partial file this old belongs to no live attempt (exports time out sooner).
STRAY_AFTER_S = 3 * 3600


def cleanup() -> dict:
    summary = {
        "jobs_deleted": delete_old_jobs(),
        "exports_expired": expire_exports(),
        "files_removed": remove_stray_files(),
    }
    logger.info("cleanup: %s", summary)
    return summary


def delete_old_jobs() -> int:
    config, now = current_app.config, utcnow()
    finished_before = now - timedelta(days=config["JOB_RETENTION_DAYS"])
    failed_before = now - timedelta(days=config["FAILED_JOB_RETENTION_DAYS"])
    old = or_(
        (Job.status.in_(("succeeded", "cancelled")) & (Job.finished_at < finished_before)),
        ((Job.status == "failed") & (Job.finished_at < failed_before)),
    )
    deleted = 0
    while True:
        ids = db.session.scalars(select(Job.id).where(old).limit(BATCH)).all()
        if not ids:
            db.session.rollback()
            return deleted
        # job_attempts go with them (ON DELETE CASCADE); emails and exports keep
        # their rows with job_id set to NULL.
        db.session.execute(delete(Job).where(Job.id.in_(ids), old))
        db.session.commit()
        deleted += len(ids)


def expire_exports() -> int:
    cutoff = utcnow() - timedelta(seconds=current_app.config["EXPORT_LINK_TTL_S"])
    expired = 0
    while True:
        batch = db.session.execute(
            select(Export.id, Export.file_name)
            .where(Export.status == "succeeded", Export.finished_at < cutoff)
            .limit(BATCH)
        ).all()
        if not batch:
            db.session.rollback()
            return expired
        for _, file_name in batch:
            if file_name:
                (export_dir() / file_name).unlink(missing_ok=True)
        db.session.execute(
            update(Export)
            .where(Export.id.in_([export_id for export_id, _ in batch]))
            .values(status="expired")
        )
        db.session.commit()
        expired += len(batch)


def remove_stray_files() -> int:
    """Partial files no attempt is writing, and export files no export owns."""
    directory = export_dir()
    if not directory.is_dir():
        return 0
    live = set(
        db.session.scalars(select(Export.file_name).where(Export.status == "succeeded")).all()
    )
    unfinished = set(
        db.session.scalars(select(Export.id).where(Export.status.in_(("queued", "running")))).all()
    )
    db.session.rollback()
    now, removed = time.time(), 0
    for path in directory.iterdir():
        if path.is_file() and path.name not in live and now - path.stat().st_mtime > 60:
            path.unlink(missing_ok=True)
            removed += 1
    partial = directory / PARTIAL_DIR
    for path in partial.glob("*") if partial.is_dir() else ():
        owner = path.name.split(".", 1)[0]
        age = now - path.stat().st_mtime
        if owner not in unfinished or age > STRAY_AFTER_S:
            path.unlink(missing_ok=True)
            removed += 1
    return removed
