"""Send later: ``send_at`` on POST /api/emails and on each message of a batch.
Such a job waits ``scheduled`` in the database (no message in the broker) with
its ``scheduled_for``, is queued and published by the relay once due, and never
runs once cancelled; an admin can run it now. Bad times answer 422 and queue
nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import dramatiq
import pytest
from sqlalchemy import select, update

from app.db import db
from app.maintenance.relay import relay
from app.maintenance.scheduled import queue_due_jobs
from app.models import Email, Job
from tests.admin.conftest import csrf_token, signed_in


def _in(minutes: float) -> str:
    return (datetime.now(UTC) + timedelta(minutes=minutes)).isoformat()


def _published(broker) -> list[str]:
    return [dramatiq.Message.decode(raw).message_id for raw in broker.queues["emails"].queue]


def _job(app, job_id: str) -> Job:
    with app.app_context():
        job = db.session.get(Job, job_id)
        db.session.expunge(job)
        return job


def _due_now(app, job_id: str) -> None:
    with app.app_context():
        db.session.execute(
            update(Job)
            .where(Job.id == job_id)
            .values(scheduled_for=datetime.now(UTC) - timedelta(seconds=1))
        )
        db.session.commit()


@pytest.mark.parametrize(
    ("send_at", "problem"),
    [
        ("2026-12-24T09:00:00", "offset"),
        ("a minute ago", "future"),
        ("in 31 days", "30 days"),
        ("tomorrow at nine", "iso 8601"),
        (1767000000, "string"),
    ],
)
def test_a_bad_send_at_answers_422_and_queues_nothing(
    app, client, user, stub_broker, send_at, problem
):
    send_at = {"a minute ago": _in(-1), "in 31 days": _in(31 * 24 * 60)}.get(send_at, send_at)
    body = {"to": "a@example.com", "subject": "s", "body": "b", "send_at": send_at}
    response = client.post("/api/emails", json=body, headers=user[1])
    assert response.status_code == 422, response.json
    assert problem in response.json["fields"]["send_at"].lower()
    batch = {"messages": [{**body, "send_at": None}, body]}
    response = client.post("/api/emails/batch", json=batch, headers=user[1])
    assert response.status_code == 422
    assert "messages[1].send_at" in response.json["fields"]
    with app.app_context():
        assert db.session.scalars(select(Job)).all() == []
    assert _published(stub_broker) == []


def test_a_scheduled_email_waits_in_the_database_then_the_relay_sends_it(
    app, client, user, stub_broker
):
    send_at = _in(60)
    body = {"to": "a@example.com", "subject": "Later", "body": "b", "send_at": send_at}
    response = client.post("/api/emails", json=body, headers=user[1])
    assert response.status_code == 202, response.json
    assert response.json["status"] == "queued"  # as the owner sees an unsent email
    job_id = response.json["job_id"]
    job = client.get(f"/api/jobs/{job_id}", headers=user[1]).json
    assert job["status"] == "scheduled"
    assert datetime.fromisoformat(job["scheduled_for"]) == datetime.fromisoformat(send_at)
    assert _published(stub_broker) == []

    with app.app_context():
        assert queue_due_jobs() == {"scheduled_queued": 0}  # not due yet
    assert _published(stub_broker) == []
    _due_now(app, job_id)
    with app.app_context():
        assert queue_due_jobs() == {"scheduled_queued": 1}
        assert queue_due_jobs() == {"scheduled_queued": 0}  # once
        assert relay() == {"published": 0}  # nothing left to the relay
    assert _published(stub_broker) == [job_id]
    assert _job(app, job_id).status == "queued"


def test_a_batch_mixes_scheduled_and_immediate_emails(app, client, user, stub_broker):
    messages = [
        {"to": "now@example.com", "subject": "s", "body": "b"},
        {"to": "later@example.com", "subject": "s", "body": "b", "send_at": _in(5)},
    ]
    response = client.post("/api/emails/batch", json={"messages": messages}, headers=user[1])
    assert response.status_code == 202, response.json
    now_id, later_id = (item["job_id"] for item in response.json["items"])
    assert _published(stub_broker) == [now_id]
    assert (_job(app, now_id).status, _job(app, later_id).status) == ("queued", "scheduled")
    assert _job(app, later_id).published_at is None


def test_a_cancelled_scheduled_email_never_runs(app, client, user, admin, stub_broker):
    body = {"to": "a@example.com", "subject": "s", "body": "b", "send_at": _in(10)}
    job_id = client.post("/api/emails", json=body, headers=user[1]).json["job_id"]
    response = client.post(f"/api/jobs/{job_id}/cancel", headers=admin[1])
    assert response.status_code == 200 and response.json["status"] == "cancelled"
    _due_now(app, job_id)
    with app.app_context():
        assert queue_due_jobs() == {"scheduled_queued": 0}
    assert _job(app, job_id).status == "cancelled"
    assert _published(stub_broker) == []


def test_an_admin_runs_a_scheduled_job_now(app, client, user, admin, stub_broker):
    body = {"to": "a@example.com", "subject": "s", "body": "b", "send_at": _in(10)}
    job_id = client.post("/api/emails", json=body, headers=user[1]).json["job_id"]
    page = signed_in(app, "admin@example.com")
    assert 'id="run-now"' in page.get(f"/admin/jobs/{job_id}").text
    token = csrf_token(page, f"/admin/jobs/{job_id}")
    response = page.post(f"/admin/jobs/{job_id}/run-now", data={"csrf_token": token})
    assert response.status_code == 303
    assert _job(app, job_id).status == "queued"
    assert _published(stub_broker) == [job_id]
    # Again: it is not scheduled any more
    page.post(f"/admin/jobs/{job_id}/run-now", data={"csrf_token": token})
    assert _published(stub_broker) == [job_id]


def test_the_page_shows_a_scheduled_email(app, client, user, stub_broker):
    body = {"to": "a@example.com", "subject": "Later", "body": "b", "send_at": _in(90)}
    client.post("/api/emails", json=body, headers=user[1])
    with app.app_context():
        assert db.session.scalars(select(Email)).one()
    page = signed_in(app, "alice@example.com").get("/").text
    assert "scheduled for" in page


@pytest.mark.postgres
def test_a_mixed_batch_in_one_statement_on_postgresql(live_app, rabbit_broker, vhost):
    """PostgreSQL inserts a batch's jobs and emails in one statement: each row
    keeps its own state, and only the immediate one is published."""
    from app import auth

    with live_app.app_context():
        person = auth.create_user("pg@example.com", "correct horse")
        headers = {"Authorization": f"Bearer {auth.issue_token(person)}"}
    messages = [
        {"to": "later@example.com", "subject": "s", "body": "b", "send_at": _in(5)},
        {"to": "now@example.com", "subject": "s", "body": "b"},
    ]
    response = live_app.test_client().post(
        "/api/emails/batch", json={"messages": messages}, headers=headers
    )
    assert response.status_code == 202, response.json
    later_id, now_id = (item["job_id"] for item in response.json["items"])
    assert (_job(live_app, later_id).status, _job(live_app, now_id).status) == (
        "scheduled",
        "queued",
    )
    assert _job(live_app, later_id).published_at is None
    assert _job(live_app, now_id).published_at is not None
    assert vhost.message_count("emails") == 1
