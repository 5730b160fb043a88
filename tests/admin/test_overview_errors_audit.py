"""/admin (the overview), /admin/errors and /admin/audit, on SQLite and on
PostgreSQL (the overview's minutes are computed by the database); the audit
entries of every admin action; live pages that answer 304 while unchanged."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from app import bulk_actions
from app.db import db, utcnow
from app.error_groups import group_of
from app.models import AuditEntry, Job, JobAttempt
from tests.admin.conftest import csrf_token, signed_in, status_of
from tests.conftest import _make_user
from tests.support import factories


@pytest.fixture(params=["sqlite", "postgresql"])
def site(request):
    """(app, admin client) on either database."""
    app = request.getfixturevalue("app" if request.param == "sqlite" else "live_app")
    _make_user(app, "admin@example.com", admin=True)
    return app, signed_in(app, "admin@example.com")


def _finished(app, actor: str, status: str, minutes_ago: float, *, attempts=1, waited_s=2.0):
    with app.app_context():
        finished = utcnow() - timedelta(minutes=minutes_ago)
        job = factories.job(
            actor,
            status=status,
            created_at=finished - timedelta(seconds=waited_s + 1),
            finished_at=finished,
            started_at=finished - timedelta(seconds=1),
        )
        job.attempts = attempts
        db.session.commit()
        return job.id


def _retried_attempt(app, minutes_ago: float) -> None:
    """A job that failed once and was retried (its attempt 1 failed), now retrying."""
    with app.app_context():
        job = factories.job("send_email", status="retrying")
        job.attempts = 1
        db.session.add(
            JobAttempt(
                job_id=job.id,
                attempt=1,
                started_at=utcnow() - timedelta(minutes=minutes_ago, seconds=1),
                finished_at=utcnow() - timedelta(minutes=minutes_ago),
                outcome="failed",
            )
        )
        db.session.commit()


def test_the_overview_counts_the_last_hour_and_day_per_actor_and_the_queues(site):
    app, client = site
    for minutes in (1, 2, 3):
        _finished(app, "send_email", "succeeded", minutes, waited_s=2)
    _finished(app, "run_export", "succeeded", 5, waited_s=10)
    _finished(app, "send_email", "failed", 10, attempts=3)
    _finished(app, "send_email", "succeeded", 300)  # in the day, not the hour
    _finished(app, "send_email", "succeeded", 25 * 60)  # in neither
    _retried_attempt(app, 4)
    with app.app_context():
        for minutes in (30, 5):
            factories.job("send_email", created_at=utcnow() - timedelta(minutes=minutes))
        factories.job("run_export", status="retrying")
        db.session.commit()

    response = client.get("/admin")
    assert response.status_code == 200
    page = response.text
    # The first three cards are the hour's, the next three the day's: check them in order.
    cards = re.findall(
        r'data-metric="(\w+)">\s*<strong>[^<]+</strong> <span class="muted">([\d,]+)', page
    )
    assert cards == [
        ("succeeded", "4"), ("failed", "1"), ("retried", "1"),
        ("succeeded", "5"), ("failed", "1"), ("retried", "1"),
    ]  # fmt: skip
    assert page.count("<svg") == 6
    assert "send_email: 1/min" in page  # a bar's tooltip
    queues = dict(re.findall(r'<tr data-queue="(\w+)">\s*<td>\w+</td><td>([\d,]+)</td>', page))
    # retrying ones count apart from queued ones
    assert queues["emails"] == "2" and queues["exports"] == "0"
    assert re.search(r'<tr data-queue="emails">.*?30 min ago', page, re.S)
    # From enqueue to start: 2 s for each email, 10 s for the export (first attempts only)
    waits = re.findall(r'<span class="n">([^<]+)</span><span class="label">(p\d\d, [^<]+)<', page)
    assert dict((label, value) for value, label in waits)["p50, last hour"] == "2.0 s"


def test_the_overview_and_a_job_page_answer_304_while_nothing_changed(site):
    app, client = site
    job_id = _finished(app, "send_email", "failed", 1)
    for path in ("/admin", f"/admin/jobs/{job_id}", "/admin/jobs", "/admin/errors"):
        first = client.get(path)
        etag = first.headers["ETag"]
        assert f'data-version="{etag.strip(chr(34))}"' in first.text, path
        again = client.get(path, headers={"If-None-Match": etag})
        assert again.status_code == 304 and again.data == b"", path
    # A change gives the job page (and the list) a new version.
    with app.app_context():
        db.session.get(Job, job_id).status = "cancelled"
        db.session.commit()
    for path in (f"/admin/jobs/{job_id}", "/admin/jobs"):
        first_etag = client.get(path).headers["ETag"]
        assert client.get(path, headers={"If-None-Match": first_etag}).status_code == 304
    changed = client.get(f"/admin/jobs/{job_id}", headers={"If-None-Match": etag})
    assert changed.status_code == 200


def test_the_errors_page_groups_failures_with_a_sample_and_retries_a_group(site):
    app, client = site
    with app.app_context():
        for n in range(3):
            message = f"451 try again later for r{n}@example.com"
            factories.job(
                "send_email",
                status="failed",
                failed_attempts=1,
                error_type="SMTPDataError",
                error_message=message,
                error_group=group_of("send_email", "SMTPDataError", message),
            )
        other = factories.job(
            "send_email",
            status="failed",
            error_type="SMTPRecipientsRefused",
            error_message="550 no such user",
            error_group=group_of("send_email", "SMTPRecipientsRefused", "550 no such user"),
        ).id
        db.session.commit()
    page = client.get("/admin/errors").text
    groups = re.findall(r'data-group="([0-9a-f]{16})"', page)
    assert len(groups) == 2
    assert "451 try again later for &lt;address&gt;" in page
    assert "Traceback (most recent call last)" in page
    first = groups[0]
    # The group's jobs, listed
    listed = client.get(f"/admin/jobs?status=failed&group={first}").text
    assert len(re.findall(r'<tr data-id="', listed)) == 3

    data = {"action": "retry_all", "status": "failed", "group": first}
    confirm = client.post(
        "/admin/jobs/actions", data={**data, "csrf_token": csrf_token(client, "/admin/errors")}
    )
    assert "Retry 3 jobs?" in confirm.text
    started = client.post(
        "/admin/jobs/actions",
        data={**data, "confirmed": "yes", "csrf_token": csrf_token(client, "/admin/errors")},
    )
    assert started.status_code == 303
    with app.app_context():
        bulk = db.session.scalars(select(Job).where(Job.actor == "bulk_action")).one()
        assert bulk_actions.run(bulk.id) == {"matched": 3, "done": 3, "skipped": 0}
    assert status_of(app, other) == "failed"


def test_every_admin_action_is_in_the_audit_log(site):
    app, client = site
    with app.app_context():
        failed = [factories.job("send_email", status="failed").id for _ in range(3)]
        queued = factories.job("send_email", status="queued").id
        db.session.commit()
    token = csrf_token(client, "/admin/jobs")
    client.post(
        "/admin/jobs/actions", data={"action": "retry", "job_id": failed[:2], "csrf_token": token}
    )
    client.post(f"/admin/jobs/{queued}/cancel", data={"csrf_token": token})
    client.post(
        f"/admin/jobs/{queued}/cancel", data={"csrf_token": token}
    )  # refused: cancelled already
    client.post(f"/admin/jobs/{failed[2]}/retry", data={"csrf_token": token})

    with app.app_context():
        entries = db.session.scalars(select(AuditEntry).order_by(AuditEntry.id)).all()
        assert [(e.user_email, e.action, e.target, e.detail) for e in entries] == [
            ("admin@example.com", "retry", {"job_ids": failed[:2]}, {"done": 2, "skipped": 0}),
            ("admin@example.com", "cancel", {"job_ids": [queued]}, {"done": 1, "skipped": 0}),
            ("admin@example.com", "cancel", {"job_ids": [queued]}, {"done": 0, "skipped": 1}),
            ("admin@example.com", "retry", {"job_ids": [failed[2]]}, {"done": 1, "skipped": 0}),
        ]
    page = client.get("/admin/audit").text
    assert len(re.findall(r'<tr data-id="', page)) == 4
    assert page.index(failed[2][:8]) < page.index(failed[0][:8])  # newest first


def test_the_api_retry_and_cancel_are_audited(app, client, admin, stub_broker):
    headers = admin[1]
    with app.app_context():
        failed = factories.job("send_email", status="failed").id
        db.session.commit()
    assert client.post(f"/api/jobs/{failed}/retry", headers=headers).status_code == 202
    assert client.post(f"/api/jobs/{failed}/retry", headers=headers).status_code == 409
    assert client.post(f"/api/jobs/{failed}/cancel", headers=headers).status_code == 200
    audit = client.get("/api/audit", headers=headers).json["items"]
    assert [(e["action"], e["target"], e["detail"]) for e in audit] == [
        ("cancel", {"job_ids": [failed]}, {"done": 1, "skipped": 0}),
        ("retry", {"job_ids": [failed]}, {"done": 0, "skipped": 1}),
        ("retry", {"job_ids": [failed]}, {"done": 1, "skipped": 0}),
    ]
