"""Pausing a queue with real workers, RabbitMQ and PostgreSQL: while it is paused
no attempt starts on it, its jobs wait in the database (parked: queued, not
published) with their attempts and retries unspent, nothing is dead-lettered
and RabbitMQ holds nothing for it; resumed, the relay publishes them and each
email is sent once. Also when the worker is SIGKILLed while the queue is paused,
and for a retry that comes due during the pause."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app import auth
from app.db import db
from app.models import AuditEntry, Job
from tests.support.audit import audit
from tests.support.jobs import all_in, send_emails
from tests.support.worker import wait_until

pytestmark = [pytest.mark.rabbitmq, pytest.mark.postgres]


@pytest.fixture()
def admin_headers(live_app):
    with live_app.app_context():
        admin = auth.create_user("ops@example.com", "pw", admin=True)
        return {"Authorization": f"Bearer {auth.issue_token(admin)}"}


def _rows(app, job_ids) -> list[tuple]:
    with app.app_context():
        return db.session.execute(
            select(Job.status, Job.published_at.is_(None), Job.attempts, Job.retries).where(
                Job.id.in_(job_ids)
            )
        ).all()


def _parked(app, job_ids) -> bool:
    return all(
        status == "queued" and unpublished for status, unpublished, *_ in _rows(app, job_ids)
    )


def _change(app, headers, queue: str, verb: str) -> dict:
    response = app.test_client().post(f"/api/queues/{queue}/{verb}", headers=headers)
    assert response.status_code == 200, response.json
    return response.json


def test_a_paused_queue_starts_nothing_and_its_jobs_run_once_after_resume(
    live_app, rabbit_broker, vhost, start_worker, start_scheduler, smtp_server, proxies, headers,
    admin_headers,
):  # fmt: skip
    start_worker(**proxies.env)
    start_scheduler(**proxies.env)
    assert _change(live_app, admin_headers, "emails", "pause") == {"name": "emails", "paused": True}

    sent = send_emails(live_app, headers, 5)
    job_ids = [s["job_id"] for s in sent]
    # Each message reached the worker, which parked its job instead of starting it
    wait_until(lambda: _parked(live_app, job_ids), message="all parked")
    wait_until(lambda: vhost.message_count("emails") == 0, message="RabbitMQ holds nothing")
    assert {(attempts, retries) for *_, attempts, retries in _rows(live_app, job_ids)} == {(0, 0)}
    assert smtp_server.messages == []
    assert vhost.message_count("emails.XQ") == 0
    listed = live_app.test_client().get("/api/queues", headers=admin_headers).json["items"]
    emails = next(q for q in listed if q["name"] == "emails")
    assert (emails["paused"], emails["queued"], emails["running"]) == (True, 5, 0)

    # Resumed: the relay (every second here) publishes them; each sent once
    assert _change(live_app, admin_headers, "emails", "resume")["paused"] is False
    wait_until(lambda: all_in(live_app, job_ids, "succeeded"), timeout=30, message="sent")
    assert audit(live_app, smtp_server)["delivered"] == 5
    with live_app.app_context():
        actions = db.session.scalars(select(AuditEntry.action).order_by(AuditEntry.id)).all()
    assert actions == ["pause_queue", "resume_queue"]


def test_a_worker_killed_while_its_queue_is_paused_loses_nothing(
    live_app, rabbit_broker, vhost, start_worker, start_scheduler, smtp_server, proxies, headers,
    admin_headers,
):  # fmt: skip
    # Given a retry that comes due while the queue is paused: the first attempt is refused
    live_app.config["RETRY_MIN_BACKOFF_MS"] = 2000
    smtp_server.recorder.reply = "451 4.3.0 try again later"
    first = start_worker(**proxies.env, RETRY_MIN_BACKOFF_MS="2000", RETRY_MAX_BACKOFF_MS="2000")
    [retrying] = send_emails(live_app, headers, 1)
    wait_until(lambda: _rows(live_app, [retrying["job_id"]])[0][0] == "retrying", message="retry")
    _change(live_app, admin_headers, "emails", "pause")
    smtp_server.recorder.reply = None
    waiting = send_emails(live_app, headers, 3)
    job_ids = [retrying["job_id"], *(s["job_id"] for s in waiting)]
    wait_until(lambda: _parked(live_app, job_ids), timeout=20, message="all parked")
    # The retry waits with its one attempt and one retry: nothing spent while paused
    assert _rows(live_app, [retrying["job_id"]])[0][2:] == (1, 1)

    # When the worker is SIGKILLed during the pause, and another worker and a scheduler run
    first.kill()
    start_worker(**proxies.env)
    start_scheduler(**proxies.env)
    assert smtp_server.messages == []

    # Then after resume every email is sent once, the retry in its second attempt
    _change(live_app, admin_headers, "emails", "resume")
    wait_until(lambda: all_in(live_app, job_ids, "succeeded"), timeout=30, message="sent")
    assert _rows(live_app, [retrying["job_id"]])[0][2] == 2
    assert vhost.message_count("emails.XQ") == 0
    assert audit(live_app, smtp_server)["delivered"] == 4
