"""resend_failed_emails picks exactly the right emails, and a resent email is sent."""

from __future__ import annotations

from datetime import timedelta

from app.db import db, utcnow
from app.email_queue import new_email
from app.maintenance.resend import resend_failed_emails
from app.models import Email, Job


def _email(
    app, user_id, *, status="failed", age_s=3600, rounds=0, error="SMTPTemporaryError", sent=False
) -> str:
    with app.app_context():
        email, job = new_email(user_id=user_id, to="x@example.com", subject="s", body="b")
        job.status, job.error_type, job.error_message = status, error, "boom"
        job.finished_at = utcnow() - timedelta(seconds=age_s)
        email.resend_rounds = rounds
        email.sent_at = utcnow() if sent else None
        db.session.commit()
        return email.id


def test_resend_picks_failed_emails_with_rounds_left_that_failed_for_long_enough(
    app, user, stub_broker
):
    user_id = user[0]
    interval = app.config["RESEND_INTERVAL_S"]
    rounds = app.config["EMAIL_RESEND_MAX_ROUNDS"]
    picked = _email(app, user_id, age_s=interval + 60)
    skipped = {
        "too recent": _email(app, user_id, age_s=interval - 60),
        "no rounds left": _email(app, user_id, age_s=interval + 60, rounds=rounds),
        "refused for good": _email(app, user_id, age_s=interval + 60, error="RecipientRefused"),
        "already sent": _email(app, user_id, age_s=interval + 60, sent=True),
        "still retrying": _email(app, user_id, status="retrying", age_s=interval + 60),
    }
    with app.app_context():
        assert resend_failed_emails() == {"resent": 1}
        email = db.session.get(Email, picked)
        assert (email.resend_rounds, email.job.status, email.job.series) == (1, "queued", 1)
        for reason, email_id in skipped.items():
            assert db.session.get(Email, email_id).job.series == 0, reason
    assert [m.message_id for m in _queued(stub_broker)] == [email.job_id]


def test_resent_email_ends_sent_against_a_real_smtp_server(
    app, user, stub_broker, stub_worker, smtp_server
):
    email_id = _email(app, user[0], age_s=app.config["RESEND_INTERVAL_S"] + 60)
    with app.app_context():
        resend_failed_emails()
    stub_broker.join("emails")
    stub_worker.join()
    with app.app_context():
        email = db.session.get(Email, email_id)
        assert email.sent_at is not None
        assert db.session.get(Job, email.job_id).status == "succeeded"
    assert len(smtp_server.messages) == 1


def _queued(broker):
    import dramatiq

    queue = broker.queues.get("emails")
    return [dramatiq.Message.decode(data) for data in list(queue.queue)] if queue else []
