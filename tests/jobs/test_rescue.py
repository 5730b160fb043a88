"""Jobs whose message was lost are published again, and run once (StubBroker)."""

from __future__ import annotations

from datetime import timedelta

from app.db import db, utcnow
from app.emails import new_email
from app.jobs import outbox
from app.jobs.rescue import grace, rescue_lost_jobs
from app.models import Job


def _email_job(app, user_id, *, status, age) -> str:
    with app.app_context():
        _, job = new_email(user_id=user_id, to="r@example.com", subject="s", body="b")
        job.status = status
        job.published_at = utcnow() - age
        if status == "retrying":
            job.next_retry_at = utcnow() - age
        db.session.commit()
        return job.id


def test_overdue_retrying_job_is_rescued_and_runs_once(
    app, user, stub_broker, stub_worker, smtp_server
):
    with app.app_context():
        lost = _email_job(app, user[0], status="retrying", age=grace() * 2)
        fresh = _email_job(app, user[0], status="retrying", age=timedelta(0))
        assert rescue_lost_jobs() == 1
        # A second copy, as if the lost message turned up after all
        outbox.publish(outbox.message_for(db.session.get(Job, lost)))
    stub_broker.join("emails")
    stub_worker.join()
    with app.app_context():
        job = db.session.get(Job, lost)
        assert (job.status, job.attempts) == ("succeeded", 1)
        assert db.session.get(Job, fresh).status == "retrying"
    assert len(smtp_server.messages) == 1


def test_stale_queued_job_is_rescued_only_while_its_queue_is_empty(app, user, stub_broker):
    with app.app_context():
        lost = _email_job(app, user[0], status="queued", age=grace() * 2)
        stub_broker.declare_queue("emails")
        stub_broker.enqueue(outbox.message_for(db.session.get(Job, lost)))
        assert rescue_lost_jobs() == 0  # its message may still be waiting in line
        stub_broker.flush("emails")
        assert rescue_lost_jobs() == 1
        assert rescue_lost_jobs() == 0  # published again just now
