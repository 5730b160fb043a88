"""The end of every fault test: each job, email and export row checked against
what the SMTP server received and what files exist."""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

from openpyxl import load_workbook

from app.db import db
from app.models import Email, Export, Job, JobAttempt


def audit(app, smtp_server, *, jobs: str = "succeeded", duplicates_allowed: int = 0) -> dict:
    """Assert that every job ended ``jobs`` with one closed attempt per try and
    exactly one succeeded attempt when it succeeded; that every email recorded
    as sent reached the SMTP server, none that was not sent did, and none more
    than once (beyond ``duplicates_allowed``); and that every succeeded export's
    file is whole and no partial file is left. Returns the counts."""
    delivered = Counter(smtp_server.recorder.message_ids())
    with app.app_context():
        # Periodic jobs a scheduler keeps enqueueing may be mid-run at any moment.
        all_jobs = db.session.scalars(db.select(Job).where(Job.queue != "maintenance")).all()
        for job in all_jobs:
            assert job.status == jobs, f"job {job.id} is {job.status}: {job.error_message}"
            outcomes = [attempt.outcome for attempt in job.history]
            assert "running" not in outcomes, f"job {job.id} has an open attempt: {outcomes}"
            assert len(outcomes) == job.attempts, f"job {job.id}: {job.attempts} vs {outcomes}"
            if job.status == "succeeded":
                assert outcomes.count("succeeded") == 1, f"job {job.id}: {outcomes}"
        open_attempts = db.select(JobAttempt).where(
            JobAttempt.outcome == "running", JobAttempt.job_id.in_([j.id for j in all_jobs])
        )
        assert db.session.scalars(open_attempts).first() is None

        emails = db.session.scalars(db.select(Email)).all()
        by_message_id = {email.message_id: email for email in emails}
        for message_id in delivered:
            assert message_id in by_message_id, f"unknown message delivered: {message_id}"
        for email in emails:
            copies = delivered[email.message_id]
            if email.sent_at is not None:
                assert copies >= 1, f"email {email.id} is recorded as sent but never arrived"
            elif jobs == "succeeded":
                raise AssertionError(f"email {email.id} of a succeeded job has no sent_at")
        duplicates = sum(copies - 1 for copies in delivered.values() if copies > 1)
        assert duplicates <= duplicates_allowed, f"{duplicates} email(s) delivered twice"

        exports = db.session.scalars(db.select(Export)).all()
        export_dir = Path(app.config["EXPORT_DIR"])
        for export in exports:
            if export.status == "succeeded":
                _assert_whole(export_dir / export.file_name, export.format, export.rows)
        partial = export_dir / ".partial"
        leftovers = list(partial.iterdir()) if partial.is_dir() else []
        assert leftovers == [], f"partial files left: {leftovers}"
    return {
        "jobs": len(all_jobs),
        "emails": len(emails),
        "delivered": sum(delivered.values()),
        "duplicates": duplicates,
        "exports": len(exports),
    }


def _assert_whole(path: Path, fmt: str, rows: int) -> None:
    assert path.is_file(), f"{path} is missing"
    if fmt == "csv":
        with path.open(newline="", encoding="utf-8") as file:
            count = sum(1 for _ in csv.reader(file)) - 1
    elif fmt == "json":
        count = len(json.loads(path.read_text(encoding="utf-8")))
    else:
        book = load_workbook(path, read_only=True)
        count = sum(sheet.max_row - 1 for sheet in book.worksheets)
    assert count == rows, f"{path} holds {count} rows, the export says {rows}"
