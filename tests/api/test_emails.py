"""POST /api/emails and GET /api/emails/<id>: validation, idempotency, ownership
and delivery through a real worker (StubBroker) to a real SMTP server (aiosmtpd)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import update

from app.db import db, utcnow
from app.jobs import outbox
from app.models import Email, Job
from tests.api.email_helpers import GOOD, post_email, queued_messages, row_counts

# --- success -----------------------------------------------------------------


def test_good_email_answers_202_with_location_and_queues_one_message(
    app, client, user, stub_broker
):
    user_id, headers = user

    # When
    response = post_email(client, headers, {**GOOD, "html": "<p>Hi Carol</p>"})

    # Then the answer names the job and the email
    assert response.status_code == 202
    body = response.get_json()
    assert set(body) == {"job_id", "email_id", "status"}
    assert body["status"] == "queued"
    assert response.headers["Location"] == f"/api/jobs/{body['job_id']}"

    # and both rows are committed, linked and owned by the user
    with app.app_context():
        email = db.session.get(Email, body["email_id"])
        job = db.session.get(Job, body["job_id"])
        assert (email.user_id, email.job_id) == (user_id, job.id)
        assert (email.to, email.subject, email.body, email.html) == (
            GOOD["to"],
            GOOD["subject"],
            GOOD["body"],
            "<p>Hi Carol</p>",
        )
        assert (job.user_id, job.actor, job.queue, job.status) == (
            user_id,
            "send_email",
            "emails",
            "queued",
        )
        assert job.args == [email.id]
        assert job.published_at is not None

    # and exactly one message is queued, whose id is the job's id and which carries the email id
    [message] = queued_messages(stub_broker)
    assert message.message_id == body["job_id"]
    assert message.actor_name == "send_email"
    assert list(message.args) == [body["email_id"]]


def test_location_header_leads_to_the_queued_job(client, user, stub_broker):
    _, headers = user
    response = post_email(client, headers)

    job = client.get(response.headers["Location"], headers=headers)

    assert job.status_code == 200
    assert job.get_json()["id"] == response.get_json()["job_id"]
    assert job.get_json()["status"] == "queued"


def test_empty_body_is_allowed(client, user, stub_broker):
    _, headers = user

    response = post_email(client, headers, {**GOOD, "body": ""})

    assert response.status_code == 202


def test_address_domain_is_normalized(app, client, user, stub_broker):
    _, headers = user

    response = post_email(client, headers, {**GOOD, "to": "carol@EXAMPLE.com"})

    assert response.status_code == 202
    with app.app_context():
        assert db.session.get(Email, response.get_json()["email_id"]).to == "carol@example.com"


# --- Idempotency-Key -----------------------------------------------------------


def test_repeated_idempotency_key_returns_the_first_ids_and_queues_once(
    app, client, user, stub_broker
):
    _, headers = user
    headers = {**headers, "Idempotency-Key": "order-42"}

    # Given a first request
    first = post_email(client, headers)

    # When the same user repeats it with the same body
    second = post_email(client, headers)

    # Then both answers name the first email and job
    assert first.status_code == 202
    ids = {(r.get_json()["email_id"], r.get_json()["job_id"]) for r in (first, second)}
    assert len(ids) == 1
    assert second.status_code in (200, 202)
    assert second.headers["Location"] == first.headers["Location"]
    # and one email, one job and one message exist
    assert row_counts(app) == (1, 1)
    assert len(queued_messages(stub_broker)) == 1


def test_idempotency_key_reused_with_another_body_answers_422_and_queues_nothing(
    app, client, user, stub_broker
):
    _, headers = user
    headers = {**headers, "Idempotency-Key": "order-43"}
    first = post_email(client, headers)

    # When the key comes again with a different subject
    reused = post_email(client, headers, {**GOOD, "subject": "Changed"})

    # Then it is refused, and only the first email exists
    assert first.status_code == 202
    assert reused.status_code == 422
    assert reused.get_json() == {"error": "Idempotency-Key reused with a different request"}
    assert row_counts(app) == (1, 1)
    assert len(queued_messages(stub_broker)) == 1
    # and the same body still answers with the first email
    again = post_email(client, headers)
    assert again.get_json()["email_id"] == first.get_json()["email_id"]


def test_same_idempotency_key_from_another_user_creates_a_separate_email(
    app, client, user, other_user, stub_broker
):
    # When two users send with the same key
    mine = post_email(client, {**user[1], "Idempotency-Key": "shared"})
    theirs = post_email(client, {**other_user[1], "Idempotency-Key": "shared"})

    # Then each has an email of their own
    assert mine.status_code == theirs.status_code == 202
    assert mine.get_json()["email_id"] != theirs.get_json()["email_id"]
    assert mine.get_json()["job_id"] != theirs.get_json()["job_id"]
    assert row_counts(app) == (2, 2)
    assert len(queued_messages(stub_broker)) == 2
    with app.app_context():
        owner = db.session.get(Email, theirs.get_json()["email_id"]).user_id
    assert owner == other_user[0]


def test_different_idempotency_keys_create_separate_emails(app, client, user, stub_broker):
    _, headers = user

    first = post_email(client, {**headers, "Idempotency-Key": "a"})
    second = post_email(client, {**headers, "Idempotency-Key": "b"})

    assert first.get_json()["email_id"] != second.get_json()["email_id"]
    assert row_counts(app) == (2, 2)


def test_requests_without_idempotency_key_are_never_merged(app, client, user, stub_broker):
    _, headers = user

    first = post_email(client, headers)
    second = post_email(client, headers)

    assert first.get_json()["email_id"] != second.get_json()["email_id"]
    assert len(queued_messages(stub_broker)) == 2


def _age_emails(app, hours: float) -> None:
    with app.app_context():
        db.session.execute(update(Email).values(created_at=utcnow() - timedelta(hours=hours)))
        db.session.commit()


def test_idempotency_key_older_than_24_hours_creates_a_new_email(app, client, user, stub_broker):
    _, headers = user
    headers = {**headers, "Idempotency-Key": "daily-report"}

    # Given an email sent with the key 25 hours ago
    first = post_email(client, headers).get_json()
    _age_emails(app, 25)

    # When the key is used again
    second = post_email(client, headers)

    # Then a new email and job are created and queued
    assert second.status_code == 202
    assert second.get_json()["email_id"] != first["email_id"]
    assert second.get_json()["job_id"] != first["job_id"]
    assert row_counts(app) == (2, 2)
    assert len(queued_messages(stub_broker)) == 2
    # and a third use of the key, now fresh, answers with the new email
    third = post_email(client, headers)
    assert third.get_json()["email_id"] == second.get_json()["email_id"]
    assert row_counts(app) == (2, 2)


def test_idempotency_key_younger_than_24_hours_still_returns_the_first_email(
    app, client, user, stub_broker
):
    _, headers = user
    headers = {**headers, "Idempotency-Key": "almost-a-day"}
    first = post_email(client, headers).get_json()
    _age_emails(app, 23.5)

    second = post_email(client, headers).get_json()

    assert second["email_id"] == first["email_id"]
    assert row_counts(app) == (1, 1)
    assert len(queued_messages(stub_broker)) == 1


# --- GET /api/emails/<id> ------------------------------------------------------

EMAIL_FIELDS = {
    "id",
    "to",
    "subject",
    "status",
    "attempts",
    "resend_rounds",
    "sent_at",
    "job_id",
    "error",
}


def test_owner_gets_the_email_with_the_contract_fields(client, user, stub_broker):
    _, headers = user
    created = post_email(client, headers).get_json()

    response = client.get(f"/api/emails/{created['email_id']}", headers=headers)

    assert response.status_code == 200
    body = response.get_json()
    assert set(body) == EMAIL_FIELDS
    assert body == {
        "id": created["email_id"],
        "to": GOOD["to"],
        "subject": GOOD["subject"],
        "status": "queued",
        "attempts": 0,
        "resend_rounds": 0,
        "sent_at": None,
        "job_id": created["job_id"],
        "error": None,
    }


def test_another_users_email_answers_404_not_403(client, user, other_user, stub_broker):
    created = post_email(client, user[1]).get_json()

    response = client.get(f"/api/emails/{created['email_id']}", headers=other_user[1])

    assert response.status_code == 404
    assert response.get_json()["error"]


def test_another_users_email_looks_the_same_as_an_unknown_one(
    client, user, other_user, stub_broker
):
    created = post_email(client, user[1]).get_json()

    theirs = client.get(f"/api/emails/{created['email_id']}", headers=other_user[1])
    unknown = client.get("/api/emails/00000000-0000-0000-0000-000000000000", headers=other_user[1])

    assert theirs.status_code == unknown.status_code == 404
    assert theirs.get_json() == unknown.get_json()


def test_admin_gets_any_users_email(client, user, admin, stub_broker):
    created = post_email(client, user[1]).get_json()

    response = client.get(f"/api/emails/{created['email_id']}", headers=admin[1])

    assert response.status_code == 200
    assert response.get_json()["id"] == created["email_id"]


@pytest.mark.parametrize("email_id", ["00000000-0000-0000-0000-000000000000", "nope"])
def test_unknown_email_answers_404(client, user, email_id):
    response = client.get(f"/api/emails/{email_id}", headers=user[1])

    assert response.status_code == 404
    assert response.get_json()["error"]


def test_get_email_without_token_answers_401(client, user, stub_broker):
    created = post_email(client, user[1]).get_json()

    response = client.get(f"/api/emails/{created['email_id']}")

    assert response.status_code == 401


# --- delivery through the worker -------------------------------------------------


def test_worker_sends_the_email_once_with_the_stored_message_id(
    app, client, user, stub_broker, stub_worker, smtp_server
):
    _, headers = user

    # Given a queued email
    created = post_email(client, headers).get_json()

    # When the worker has processed the queue
    stub_broker.join("emails")
    stub_worker.join()

    # Then the email is sent
    body = client.get(f"/api/emails/{created['email_id']}", headers=headers).get_json()
    assert body["status"] == "sent"
    assert body["attempts"] == 1
    assert body["sent_at"] is not None
    assert body["error"] is None
    job = client.get(f"/api/jobs/{created['job_id']}", headers=headers).get_json()
    assert job["status"] == "succeeded"

    # and the SMTP server received it once, with the stored Message-ID and nothing else
    [message] = smtp_server.recorder.wait_for(1, timeout=5)
    with app.app_context():
        stored = db.session.get(Email, created["email_id"]).message_id
    assert message.get_all("Message-ID") == [stored]
    assert message["To"] == GOOD["to"]
    assert message["Subject"] == GOOD["subject"]
    assert smtp_server.messages == [message]


def test_redelivered_message_does_not_send_the_email_again(
    app, client, user, stub_broker, stub_worker, smtp_server
):
    _, headers = user

    # Given an email already sent
    created = post_email(client, headers).get_json()
    stub_broker.join("emails")
    stub_worker.join()
    assert len(smtp_server.recorder.wait_for(1, timeout=5)) == 1

    # When the broker delivers its message a second time
    assert queued_messages(stub_broker) == []
    with app.app_context():
        outbox.publish(outbox.message_for(db.session.get(Job, created["job_id"])))
    stub_broker.join("emails")
    stub_worker.join()

    # Then nothing more is sent and the email stays sent once
    assert len(smtp_server.messages) == 1
    body = client.get(f"/api/emails/{created['email_id']}", headers=headers).get_json()
    assert (body["status"], body["attempts"]) == ("sent", 1)
