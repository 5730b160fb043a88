"""A job's admin page (arguments, attempts and tracebacks, Retry and Cancel, its
email or export) and the failed emails page with Resend."""

from __future__ import annotations

import re
import time

from app import emails
from app.db import db, utcnow
from app.models import Email, Export, JobAttempt
from tests.admin.conftest import (
    csrf_token,
    listed_ids,
    make_email,
    make_job,
    published_ids,
    status_of,
)

# --- a job's page ----------------------------------------------------------------------------


def test_detail_page_shows_arguments_every_attempt_and_its_traceback(app, admin_client, user):
    email_id, job_id = make_email(app, user[0], job_status="failed", to="zoe@example.com")
    with app.app_context():
        for number in (1, 2):
            db.session.add(
                JobAttempt(
                    job_id=job_id,
                    attempt=number,
                    outcome="failed",
                    finished_at=utcnow(),
                    error_type="SMTPTemporaryError",
                    error_message=f"451 try later ({number})",
                    traceback=f"Traceback (most recent call last):\n  frame {number}\n"
                    "SMTPDataError",
                )
            )
        db.session.commit()
    html = admin_client.get(f"/admin/jobs/{job_id}").text
    assert email_id in html  # the arguments, and the email's own card
    assert "zoe@example.com" in html
    assert re.findall(r'<tr data-attempt="(\d+)">', html) == ["1", "2"]
    assert "451 try later (1)" in html and "451 try later (2)" in html
    assert html.count('<pre class="traceback">') == 2
    assert "  frame 2\nSMTPDataError</pre>" in html
    assert 'id="retry"' in html and 'id="cancel"' in html


def test_detail_page_of_an_export_job_shows_its_export(app, admin_client, user):
    job_id = make_job(app, actor="run_export", status="failed", user_id=user[0])
    with app.app_context():
        export = Export(
            user_id=user[0], job_id=job_id, kind="posts", format="xlsx", status="failed"
        )
        db.session.add(export)
        db.session.commit()
        export_id = export.id
    html = admin_client.get(f"/admin/jobs/{job_id}").text
    assert 'id="export"' in html and export_id in html and "posts as XLSX" in html
    assert "alice@example.com" in html  # the owner


def test_detail_page_offers_only_the_allowed_buttons(app, admin_client):
    running = admin_client.get(f"/admin/jobs/{make_job(app, status='running')}").text
    assert 'id="retry"' not in running and 'id="cancel"' not in running
    cancelled = admin_client.get(f"/admin/jobs/{make_job(app, status='cancelled')}").text
    assert 'id="retry"' in cancelled and 'id="cancel"' not in cancelled


def test_detail_page_of_an_unknown_job_is_404(admin_client):
    assert admin_client.get("/admin/jobs/no-such-job").status_code == 404
    token = csrf_token(admin_client)
    assert (
        admin_client.post("/admin/jobs/nope/retry", data={"csrf_token": token}).status_code == 404
    )


def test_detail_page_cancel_button_cancels(app, admin_client):
    job_id = make_job(app, status="queued")
    response = admin_client.post(
        f"/admin/jobs/{job_id}/cancel", data={"csrf_token": csrf_token(admin_client)}
    )
    assert response.headers["Location"] == f"/admin/jobs/{job_id}"
    assert "Job cancelled." in admin_client.get(response.headers["Location"]).text
    assert status_of(app, job_id) == "cancelled"


# --- failed emails ---------------------------------------------------------------------------


def test_emails_page_lists_only_failed_emails(app, admin_client, user):
    failed, _ = make_email(app, user[0], job_status="failed", to="failed@example.com")
    cancelled, _ = make_email(app, user[0], job_status="cancelled", to="cancelled@example.com")
    orphan, _ = make_email(app, user[0], job_status=None, to="orphan@example.com")
    make_email(app, user[0], job_status="succeeded", sent=True, to="sent@example.com")
    make_email(app, user[0], job_status="queued", to="queued@example.com")
    make_email(app, user[0], job_status="retrying", to="retrying@example.com")
    html = admin_client.get("/admin/emails").text
    assert set(listed_ids(html)) == {failed, cancelled, orphan}
    assert "451 4.3.0 try again later" in html


def test_resend_delivers_a_failed_email(app, admin_client, user, stub_worker, smtp_server):
    email_id, job_id = make_email(app, user[0], job_status="failed", to="again@example.com")
    response = admin_client.post(
        "/admin/emails/resend", data={"one": email_id, "csrf_token": csrf_token(admin_client)}
    )
    assert response.status_code == 303
    assert "Resending 1 email." in admin_client.get(response.headers["Location"]).text
    [message] = smtp_server.recorder.wait_for(1)
    assert message["To"] == "again@example.com"
    deadline = time.monotonic() + 10
    while status_of(app, job_id) != "succeeded" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert status_of(app, job_id) == "succeeded"
    with app.app_context():
        assert emails.status(db.session.get(Email, email_id)) == "sent"
    assert email_id not in admin_client.get("/admin/emails").text


def test_resend_selected_skips_emails_that_cannot_be_resent(app, admin_client, user, stub_broker):
    failed, failed_job = make_email(app, user[0], job_status="failed")
    orphan, _ = make_email(app, user[0], job_status=None)
    response = admin_client.post(
        "/admin/emails/resend",
        data={"email_id": [failed, orphan], "csrf_token": csrf_token(admin_client)},
    )
    html = admin_client.get(response.headers["Location"]).text
    assert "Resending 1 email; skipped 1" in html
    assert published_ids(stub_broker, "emails") == [failed_job]
