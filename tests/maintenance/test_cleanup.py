"""cleanup removes exactly what is past retention, and its files."""

from __future__ import annotations

import os
import time
from datetime import timedelta
from pathlib import Path

from sqlalchemy import update

from app import login_throttle
from app.db import db, utcnow
from app.exports import links
from app.maintenance import cleanup as cleanup_module
from app.maintenance.cleanup import cleanup
from app.models import ApiToken, AuditEntry, Email, Export, Job, JobAttempt, LoginThrottle, new_id
from tests.support import factories


def _job(status, age_days) -> str:
    job = factories.job(
        status=status, created_at=utcnow() - timedelta(days=age_days + 1), failed_attempts=1
    )
    job.finished_at = utcnow() - timedelta(days=age_days) if status != "queued" else None
    db.session.commit()
    return job.id


def test_cleanup_deletes_finished_jobs_past_retention_with_their_history(app, user):
    keep_days, failed_days = (
        app.config["JOB_RETENTION_DAYS"],
        app.config["FAILED_JOB_RETENTION_DAYS"],
    )
    with app.app_context():
        gone = [
            _job("succeeded", keep_days + 1),
            _job("cancelled", keep_days + 1),
            _job("failed", failed_days + 1),
        ]
        kept = [
            _job("succeeded", keep_days - 1),
            _job("failed", keep_days + 1),
            _job("queued", failed_days + 10),
            _job("retrying", failed_days + 10),
        ]
        summary = cleanup()

        assert summary["jobs_deleted"] == 3
        remaining = set(db.session.scalars(db.select(Job.id)))
        assert remaining == set(kept) and not remaining & set(gone)
        assert db.session.query(JobAttempt).count() == len(kept)


def _email(user_id, job_id, *, age_days=0) -> str:
    email = Email(
        user_id=user_id,
        job_id=job_id,
        to="a@b.c",
        subject="s",
        body="a big body " * 1000,
        html="<p>and its html</p>",
        message_id="<m@x>",
        sent_at=utcnow(),
        created_at=utcnow() - timedelta(days=age_days),
    )
    db.session.add(email)
    db.session.commit()
    return email.id


def test_cleanup_deletes_the_emails_of_the_jobs_it_deletes_and_keeps_the_others(app, user):
    # Given emails of jobs past retention and of jobs within it
    keep_days = app.config["JOB_RETENTION_DAYS"]
    with app.app_context():
        old_job, failed_job = _job("succeeded", keep_days + 1), _job("failed", keep_days + 1)
        young_job = _job("succeeded", keep_days - 1)
        gone = [_email(user[0], old_job, age_days=keep_days + 2) for _ in range(3)]
        kept = [
            _email(user[0], young_job, age_days=keep_days),
            _email(user[0], failed_job, age_days=keep_days + 2),  # failed jobs stay longer
        ]

        # When cleanup runs
        summary = cleanup()

        # Then the old job's emails went with it, bodies and all
        assert summary["jobs_deleted"] == 1
        assert set(db.session.scalars(db.select(Email.id))) == set(kept)
        assert all(db.session.get(Email, email_id) is None for email_id in gone)
        assert {db.session.get(Email, email_id).job_id for email_id in kept} == {
            young_job,
            failed_job,
        }


def test_cleanup_deletes_emails_left_without_a_job_past_retention(app, user):
    # Given emails whose job an earlier cleanup deleted, one old and one recent
    keep_days = app.config["JOB_RETENTION_DAYS"]
    with app.app_context():
        orphaned = _email(user[0], None, age_days=keep_days + 1)
        recent = _email(user[0], None, age_days=keep_days - 1)

        summary = cleanup()

        assert summary["emails_deleted"] == 1
        assert db.session.get(Email, orphaned) is None
        assert db.session.get(Email, recent) is not None


def test_cleanup_deletes_emails_in_batches(app, user, monkeypatch):
    monkeypatch.setattr(cleanup_module, "BATCH", 2)
    keep_days = app.config["JOB_RETENTION_DAYS"]
    with app.app_context():
        jobs = [_job("succeeded", keep_days + 1) for _ in range(5)]
        for job_id in jobs:
            _email(user[0], job_id, age_days=keep_days + 2)
        for _ in range(5):
            _email(user[0], None, age_days=keep_days + 2)

        summary = cleanup()

        assert (summary["jobs_deleted"], summary["emails_deleted"]) == (5, 5)
        assert db.session.query(Email).count() == 0


def test_cleanup_expires_old_export_files_and_their_links(app, user, client):
    ttl = app.config["EXPORT_LINK_TTL_S"]
    export_dir = Path(app.config["EXPORT_DIR"])
    export_dir.mkdir(parents=True, exist_ok=True)
    with app.app_context():
        old = Export(
            user_id=user[0],
            kind="posts",
            format="csv",
            status="succeeded",
            file_name="old.csv",
            finished_at=utcnow() - timedelta(seconds=ttl + 60),
        )
        new = Export(
            user_id=user[0],
            kind="posts",
            format="json",
            status="succeeded",
            file_name="new.json",
            finished_at=utcnow(),
        )
        db.session.add_all([old, new])
        db.session.commit()
        (export_dir / "old.csv").write_text("x")
        (export_dir / "new.json").write_text("[]")
        with app.test_request_context():
            token = links.sign(old.id)

        cleanup()

        assert db.session.get(Export, old.id).status == "expired"
        assert db.session.get(Export, new.id).status == "succeeded"
    assert not (export_dir / "old.csv").exists()
    assert (export_dir / "new.json").exists()
    assert client.get(f"/exports/download/{token}").status_code == 410


def test_cleanup_removes_stray_partial_files_but_not_a_running_exports_nor_unknown_files(app, user):
    partial = Path(app.config["EXPORT_DIR"]) / ".partial"
    partial.mkdir(parents=True)
    with app.app_context():
        running = Export(user_id=user[0], kind="posts", format="csv", status="running")
        db.session.add(running)
        db.session.commit()
        running_file = f"{running.id}.abc.csv"
        (partial / running_file).write_text("half")
        (partial / "deadbeef-dead.abc.csv").write_text("left by a killed worker")
        unknown = Path(app.config["EXPORT_DIR"]) / "orphan.csv"
        unknown.write_text("no export's name: not cleanup's to delete")
        an_hour_ago = time.time() - 3600
        os.utime(unknown, (an_hour_ago, an_hour_ago))

        assert cleanup()["files_removed"] == 1
    assert [p.name for p in partial.iterdir()] == [running_file]
    assert unknown.exists()


def test_cleanup_in_a_shared_export_dir_deletes_only_files_of_exports_it_knows(app, user):
    # Given EXPORT_DIR shared with other files (as EXPORT_DIR=instance would be)
    shared = Path(app.config["EXPORT_DIR"])
    shared.mkdir(parents=True)
    database = shared / "app.db"
    database.write_text("precious")
    stranger = shared / f"{new_id()}.csv"  # named like an export, but no export has that id
    stranger.write_text("someone else's")
    with app.app_context():
        failed = Export(user_id=user[0], kind="posts", format="csv", status="failed")
        db.session.add(failed)
        db.session.commit()
        leftover = shared / f"{failed.id}.csv"
        leftover.write_text("a failed export's file")
    an_hour_ago = time.time() - 3600
    for path in (database, stranger, leftover):
        os.utime(path, (an_hour_ago, an_hour_ago))

    # When cleanup runs
    with app.app_context():
        removed = cleanup()["files_removed"]

    # Then only the failed export's file is gone
    assert removed == 1
    assert not leftover.exists()
    assert database.read_text() == "precious"
    assert stranger.exists()


def test_cleanup_prunes_forgotten_sign_in_failures_and_expired_tokens(app, user, client):
    # Given an old throttle row, a fresh one, and an expired token
    with app.app_context():
        long_ago = utcnow() - login_throttle.WINDOW - timedelta(minutes=1)
        db.session.add(LoginThrottle(email="old@example.com", failures=3, last_failure_at=long_ago))
        db.session.add(LoginThrottle(email="new@example.com", failures=3, last_failure_at=utcnow()))
        db.session.execute(update(ApiToken).values(expires_at=utcnow() - timedelta(seconds=1)))
        db.session.commit()

        summary = cleanup()

        assert summary["throttle_rows_pruned"] == 1
        assert summary["tokens_deleted"] == 1
        assert [row.email for row in db.session.scalars(db.select(LoginThrottle))] == [
            "new@example.com"
        ]
    assert client.get("/api/jobs", headers=user[1]).status_code == 401


def test_cleanup_deletes_audit_entries_past_their_retention(app):
    # Given an entry older than AUDIT_RETENTION_DAYS and one just inside it
    app.config["AUDIT_RETENTION_DAYS"] = 10
    with app.app_context():
        for days in (11, 9):
            db.session.add(
                AuditEntry(
                    at=utcnow() - timedelta(days=days),
                    user_email="admin@example.com",
                    action="retry",
                    target={"job_ids": [f"job-{days}"]},
                    detail={},
                )
            )
        db.session.commit()

        # When cleanup runs, then only the old one is gone
        assert cleanup()["audit_entries_deleted"] == 1
        assert [entry.target for entry in db.session.scalars(db.select(AuditEntry))] == [
            {"job_ids": ["job-9"]}
        ]
