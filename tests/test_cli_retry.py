"""``flask jobs retry``: one job, or ``--all-failed`` as a bulk action that a
worker runs while the command follows it; each in the audit log."""

from __future__ import annotations

from sqlalchemy import select

from app.db import db
from app.models import AuditEntry, Job
from tests.support import factories


def _failed(app, count: int, actor="stray") -> list[str]:
    with app.app_context():
        jobs = [factories.job(actor, status="failed", max_retries=0) for _ in range(count)]
        db.session.commit()
        return [job.id for job in jobs]


def test_retry_all_failed_follows_the_bulk_action_to_its_end(app, stub_broker, stub_worker):
    strays, exports = _failed(app, 12), _failed(app, 2, actor="run_export")

    result = app.test_cli_runner().invoke(
        args=["jobs", "retry", "--all-failed", "--actor", "stray"]
    )

    assert result.exit_code == 0, result.output
    assert "queued 12 failed job(s); skipped 0" in result.output
    with app.app_context():
        series = dict(db.session.execute(select(Job.id, Job.series)).all())
        assert {series[job_id] for job_id in strays} == {1}
        assert {series[job_id] for job_id in exports} == {0}
        entry = db.session.scalars(select(AuditEntry)).one()
        assert (entry.action, entry.user_email, entry.target) == (
            "bulk_retry",
            "command line",
            {"status": "failed", "actor": "stray"},
        )
        assert entry.detail["done"] == 12


def test_retry_of_one_job_is_audited_with_its_outcome(app, stub_broker):
    [job_id] = _failed(app, 1)
    runner = app.test_cli_runner()

    assert runner.invoke(args=["jobs", "retry", job_id]).exit_code == 0
    again = runner.invoke(args=["jobs", "retry", job_id])

    assert again.exit_code == 1 and "is queued" in again.output
    with app.app_context():
        entries = db.session.scalars(select(AuditEntry).order_by(AuditEntry.id)).all()
        assert [(e.action, e.target, e.detail) for e in entries] == [
            ("retry", {"job_ids": [job_id]}, {"done": 1, "skipped": 0}),
            ("retry", {"job_ids": [job_id]}, {"done": 0, "skipped": 1}),
        ]
