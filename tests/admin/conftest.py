"""Helpers for the admin page tests: signed-in clients and job rows made directly."""

from __future__ import annotations

import re
from datetime import timedelta

import dramatiq
import pytest

from app import email_queue
from app.db import db, utcnow
from app.models import Job
from tests.support import factories

BASE = utcnow().replace(microsecond=0) - timedelta(days=1)


def csrf_token(client, path="/login") -> str:
    html = client.get(path).get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def signed_in(app, email: str | None):
    """A test client signed in as ``email`` (anonymous for None)."""
    client = app.test_client()
    if email is not None:
        response = client.post(
            "/login",
            data={"email": email, "password": "correct horse", "csrf_token": csrf_token(client)},
        )
        assert response.status_code == 302, response.get_data(as_text=True)
    return client


def make_job(
    app,
    *,
    actor="send_email",
    status="failed",
    minutes=0,
    args=None,
    error_type=None,
    error_message=None,
    attempts=0,
    user_id=None,
) -> str:
    """A job row in any state, ``minutes`` after a fixed base time, with one
    failed attempt (and its traceback) per ``attempts``."""
    with app.app_context():
        job = factories.job(
            actor,
            status=status,
            created_at=BASE + timedelta(minutes=minutes),
            args=args,
            user_id=user_id,
            failed_attempts=attempts,
            error_type=error_type,
            error_message=error_message,
        )
        db.session.commit()
        return job.id


def make_email(
    app, user_id: int, *, job_status: str | None, sent: bool = False, to="x@example.com"
):
    """An email whose job is in ``job_status`` (None: its job was deleted)."""
    with app.app_context():
        email, job = email_queue.new_email(user_id=user_id, to=to, subject=f"To {to}", body="Hello")
        db.session.flush()
        if job_status is None:
            email.job_id = None
            db.session.delete(job)
        else:
            job.status = job_status
            job.error_type, job.error_message = "SMTPTemporaryError", "451 4.3.0 try again later"
        if sent:
            email.sent_at = utcnow()
        db.session.commit()
        return email.id, email.job_id


def status_of(app, job_id: str) -> str:
    with app.app_context():
        return db.session.get(Job, job_id).status


def listed_ids(html: str) -> list[str]:
    return re.findall(r'<tr[^>]* data-id="([^"]+)"', html)


def published_ids(broker, queue: str) -> list[str]:
    return [dramatiq.Message.decode(raw).message_id for raw in list(broker.queues[queue].queue)]


@pytest.fixture()
def admin_client(app, admin):
    return signed_in(app, "admin@example.com")


@pytest.fixture()
def user_client(app, user):
    return signed_in(app, "alice@example.com")
