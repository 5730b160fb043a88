"""A worker SIGKILLed in the middle of a bulk retry: another worker takes the bulk
action over once its lease expired and goes on after the last committed batch.
Every job is requeued exactly once (one new series), every email sent once."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app import auth, email_queue
from app.db import db
from app.models import BulkAction, Job, User
from tests.support.audit import audit
from tests.support.jobs import all_in, outcomes
from tests.support.worker import wait_until

pytestmark = [pytest.mark.rabbitmq, pytest.mark.postgres]

EMAILS = 400


def _failed_emails(app, user_id: int) -> list[str]:
    with app.app_context():
        jobs = []
        for n in range(EMAILS):
            _, job = email_queue.new_email(
                user_id=user_id, to=f"r{n}@example.com", subject="Invoice", body="Hi"
            )
            job.status, job.error_type, job.error_message = "failed", "SMTPDataError", "451"
            jobs.append(job)
        db.session.commit()
        return [job.id for job in jobs]


def _bulk(app, job_id: str) -> BulkAction:
    with app.app_context():
        bulk = db.session.get(BulkAction, job_id)
        db.session.expunge(bulk)
        return bulk


def test_a_bulk_retry_whose_worker_is_killed_resumes_and_retries_each_job_once(
    live_app, rabbit_broker, start_worker, start_scheduler, smtp_server, proxies, headers
):
    with live_app.app_context():
        user_id = db.session.scalar(select(User.id).where(User.email == "faults@example.com"))
        admin = auth.create_user("root@example.com", "pw", admin=True)
        admin_headers = {"Authorization": f"Bearer {auth.issue_token(admin)}"}
    job_ids = _failed_emails(live_app, user_id)

    # Given a bulk retry of 400 failed emails, worked in batches of 50 by a slow worker
    slow = start_worker("tests.support.slow_bulk", **proxies.env)
    response = live_app.test_client().post(
        "/api/jobs/bulk", json={"action": "retry", "actor": "send_email"}, headers=admin_headers
    )
    assert response.status_code == 202, response.json
    bulk_id = response.json["job_id"]
    wait_until(lambda: 100 <= _bulk(live_app, bulk_id).done < EMAILS, message="half done")

    # When its worker is SIGKILLed, and another worker and a scheduler run
    slow.kill()
    done_before = _bulk(live_app, bulk_id).done
    start_worker(**proxies.env)
    start_scheduler(**proxies.env)

    # Then the bulk action is taken over and ends with every job retried once
    wait_until(lambda: all_in(live_app, [bulk_id], "succeeded"), timeout=60, message="bulk")
    bulk = _bulk(live_app, bulk_id)
    assert (bulk.matched, bulk.done, bulk.skipped) == (EMAILS, EMAILS, 0)
    assert done_before < EMAILS
    assert outcomes(live_app, bulk_id) == ["interrupted", "succeeded"]
    wait_until(lambda: all_in(live_app, job_ids, "succeeded"), timeout=60, message="sent")
    with live_app.app_context():
        series = db.session.scalars(select(Job.series).where(Job.id.in_(job_ids))).all()
        result = db.session.get(Job, bulk_id).result
    assert set(series) == {1}, "a job was requeued more than once"
    assert result == {"matched": EMAILS, "done": EMAILS, "skipped": 0}
    # The killed worker may have been sending an email (2 threads) when it died.
    counts = audit(live_app, smtp_server, duplicates_allowed=2)
    assert counts["delivered"] - counts["duplicates"] == EMAILS
