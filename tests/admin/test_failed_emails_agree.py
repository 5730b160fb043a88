"""One rule for "a failed email": ``app.emails.status``, the SQL predicate
``app.emails.failed`` that the admin list uses, and the metrics gauge agree on
every combination of job state (or no job) and sent or not."""

from __future__ import annotations

from sqlalchemy import select

from app import emails, metrics
from app.admin.emails import failed_emails
from app.db import db
from app.models import Email
from app.states import EmailStatus, JobStatus
from tests.admin.conftest import make_email

CASES = [(job_status, sent) for job_status in [*JobStatus, None] for sent in (False, True)]


def test_status_the_admin_list_and_the_metric_agree_on_which_emails_failed(app, user):
    # Given an email for each job state (and none), sent and unsent
    made = {make_email(app, user[0], job_status=status, sent=sent)[0]: (status, sent)
            for status, sent in CASES}  # fmt: skip

    with app.app_context():
        # When each of the three decides which emails failed
        by_status = {
            email.id
            for email in db.session.scalars(select(Email))
            if emails.status(email) == EmailStatus.FAILED
        }
        listed = {email.id for email in db.session.scalars(failed_emails())}
        gauge = metrics.failed_emails()

    # Then they agree: the unsent ones whose job gave up or is gone
    expected = {
        email_id
        for email_id, (status, sent) in made.items()
        if not sent and (status is None or status in emails.GAVE_UP)
    }
    assert by_status == listed == expected
    assert gauge == len(expected) == 3


def test_a_failed_emails_job_page_links_to_it_in_the_failed_emails_list(app, admin_client, user):
    failed, failed_job = make_email(app, user[0], job_status=JobStatus.FAILED)
    _, queued_job = make_email(app, user[0], job_status=JobStatus.QUEUED)

    assert (
        f'href="/admin/emails#email-{failed}"' in admin_client.get(f"/admin/jobs/{failed_job}").text
    )
    assert "/admin/emails#email-" not in admin_client.get(f"/admin/jobs/{queued_job}").text


def test_the_list_says_cancelled_for_an_email_whose_job_was_cancelled_without_error(
    app, admin_client, user
):
    email_id, job_id = make_email(app, user[0], job_status=JobStatus.CANCELLED)
    with app.app_context():
        job = db.session.get(Email, email_id).job
        job.error_type = job.error_message = None
        db.session.commit()

    html = admin_client.get("/admin/emails").text

    row = html[html.index(f'id="email-{email_id}"') :]
    assert '<span class="muted">cancelled</span>' in row[: row.index("</tr>")]
