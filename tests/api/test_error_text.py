"""Owners read a short description of a failure; the raw error text (an SMTP
reply with server paths, SQL) is for admins only: GET /api/jobs/<id>,
GET /api/jobs, GET /api/emails/<id> and the user's page."""

from __future__ import annotations

from datetime import timedelta

import pytest

from app.db import db, utcnow
from app.models import Email, JobAttempt
from tests.api.job_helpers import add_job
from tests.web.test_pages import sign_in

RAW = (
    "550 5.7.1 rejected by /etc/postfix/sender_access; "
    "[SQL: SELECT users.password_hash FROM users WHERE users.id = %(id)s]"
)
SECRETS = ("/etc/postfix", "SELECT", "password_hash")


@pytest.fixture()
def planted(app, user):
    """A failed email job of the user's whose error (and attempt's) holds RAW."""
    user_id, _ = user
    job_id = add_job(
        app,
        user_id=user_id,
        created_at=utcnow(),
        status="failed",
        attempts=1,
        finished_at=utcnow(),
        error_type="ProgrammingError",
        error_message=RAW,
    )
    with app.app_context():
        db.session.add(
            JobAttempt(
                job_id=job_id,
                attempt=1,
                outcome="failed",
                finished_at=utcnow(),
                error_type="ProgrammingError",
                error_message=RAW,
                traceback=f"Traceback (most recent call last):\nProgrammingError: {RAW}",
            )
        )
        email = Email(
            user_id=user_id,
            job_id=job_id,
            to="a@example.com",
            subject="s",
            body="b",
            message_id="<m@x>",
        )
        db.session.add(email)
        db.session.commit()
        return job_id, email.id


def _reads(client, headers, job_id, email_id) -> list[str]:
    return [
        client.get(f"/api/jobs/{job_id}", headers=headers).get_data(as_text=True),
        client.get("/api/jobs", headers=headers).get_data(as_text=True),
        client.get(f"/api/emails/{email_id}", headers=headers).get_data(as_text=True),
    ]


def test_an_owner_sees_no_raw_error_text(client, user, planted):
    job_id, email_id = planted
    for body in _reads(client, user[1], job_id, email_id):
        assert not [secret for secret in SECRETS if secret in body], body
    job = client.get(f"/api/jobs/{job_id}", headers=user[1]).get_json()
    assert job["error"] == {"type": "ProgrammingError", "message": "Internal error"}
    assert job["history"][0]["error"]["message"] == "Internal error"
    email = client.get(f"/api/emails/{email_id}", headers=user[1]).get_json()
    assert email["error"] == {"type": "ProgrammingError", "message": "Internal error"}


def test_an_owner_sees_no_raw_error_text_on_their_page(client, user, planted):
    sign_in(client)
    page = client.get("/").get_data(as_text=True)
    assert "a@example.com" in page  # the email is listed
    assert not [secret for secret in SECRETS if secret in page]


def test_an_admin_reads_the_raw_error_text(client, admin, planted):
    job_id, email_id = planted
    job, listing, email = _reads(client, admin[1], job_id, email_id)
    for body in (job, listing, email):
        assert "/etc/postfix/sender_access" in body and "password_hash" in body


def test_the_admin_job_page_shows_the_raw_error_text(app, client, admin, planted):
    job_id, _ = planted
    sign_in(client, email="admin@example.com")
    page = client.get(f"/admin/jobs/{job_id}").get_data(as_text=True)
    assert "/etc/postfix/sender_access" in page


@pytest.mark.parametrize(
    ("error_type", "status", "message"),
    [
        ("RecipientRefused", "failed", "The mail server refused the recipient"),
        ("SMTPTemporaryError", "failed", "The mail server could not take the message for now"),
        ("OperationalError", "retrying", "Temporary failure; it will be retried"),
        (
            "SMTPTemporaryError",
            "retrying",
            "The mail server could not take the message for now; it will be retried",
        ),
        ("KeyError", "failed", "Internal error"),
    ],
)
def test_an_owner_reads_a_description_of_the_error_type(
    app, client, user, error_type, status, message
):
    user_id, headers = user
    job_id = add_job(
        app,
        user_id=user_id,
        created_at=utcnow(),
        status=status,
        error_type=error_type,
        error_message=RAW,
        next_retry_at=utcnow() + timedelta(minutes=1) if status == "retrying" else None,
    )

    job = client.get(f"/api/jobs/{job_id}", headers=headers).get_json()

    assert job["error"] == {"type": error_type, "message": message}
