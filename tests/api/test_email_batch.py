"""POST /api/emails/batch: validated as a whole, answered in order, one job and
one email per message, the Idempotency-Key and the hourly quota covering the
whole batch, and nothing published when the commit fails (StubBroker, SQLite)."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import event, select
from sqlalchemy.exc import OperationalError

from app.db import db
from app.models import Email, Job
from tests.api.email_helpers import GOOD, assert_nothing_written, queued_messages, row_counts


def _messages(count: int) -> list[dict]:
    return [
        {"to": f"r{n}@example.com", "subject": f"Hello {n}", "body": f"Hi {n}"}
        for n in range(count)
    ]


def post_batch(client, headers, messages=None, **kwargs):
    payload = {"messages": _messages(3) if messages is None else messages}
    return client.post("/api/emails/batch", json=payload, headers=headers, **kwargs)


# --- success -----------------------------------------------------------------


def test_a_batch_answers_202_with_one_item_per_message_in_the_order_given(
    app, client, user, stub_broker
):
    user_id, headers = user
    messages = _messages(5)
    messages[2]["html"] = "<p>Hi 2</p>"

    # When
    response = post_batch(client, headers, messages)

    # Then each message has its item, in order, all queued
    assert response.status_code == 202
    items = response.get_json()["items"]
    assert [set(item) for item in items] == [{"job_id", "email_id", "status"}] * 5
    assert [item["status"] for item in items] == ["queued"] * 5
    # and each item's rows hold its message, with one job each, owned by the user
    with app.app_context():
        for item, message in zip(items, messages, strict=True):
            email = db.session.get(Email, item["email_id"])
            job = db.session.get(Job, item["job_id"])
            assert (email.to, email.subject, email.body, email.html) == (
                message["to"],
                message["subject"],
                message["body"],
                message.get("html"),
            )
            assert (email.user_id, email.job_id, email.user_queued) == (user_id, job.id, True)
            assert (job.actor, job.queue, job.status, job.args) == (
                "send_email",
                "emails",
                "queued",
                [email.id],
            )
            assert job.published_at is not None
    assert row_counts(app) == (5, 5)
    # and each job is published once, its message carrying its email
    published = [(m.message_id, list(m.args)) for m in queued_messages(stub_broker)]
    assert sorted(published) == sorted((i["job_id"], [i["email_id"]]) for i in items)


def test_a_batch_of_1000_ordinary_emails_fits_the_batch_body_limit(app, client, user, stub_broker):
    _, headers = user
    messages = [{**m, "body": "x" * 2000} for m in _messages(1000)]  # about 2 MiB in all

    response = post_batch(client, headers, messages)

    assert response.status_code == 202
    assert len(response.get_json()["items"]) == 1000
    assert row_counts(app) == (1000, 1000)
    assert len(queued_messages(stub_broker)) == 1000


def test_a_batch_body_over_8_mib_answers_413_and_queues_nothing(app, client, user, stub_broker):
    _, headers = user
    messages = [{**m, "body": "x" * 9000} for m in _messages(1000)]

    response = post_batch(client, headers, messages)

    assert response.status_code == 413
    assert response.get_json() == {"error": "request body over 8 MiB"}
    assert_nothing_written(app, stub_broker)


def test_the_single_endpoint_keeps_its_1_mib_limit(app, client, user, stub_broker):
    _, headers = user

    response = client.post(
        "/api/emails", json={**GOOD, "body": "x" * (1024 * 1024)}, headers=headers
    )

    assert response.status_code == 413
    assert_nothing_written(app, stub_broker)


# --- validated as a whole ------------------------------------------------------


@pytest.mark.parametrize(
    ("messages", "field"),
    [
        ([], "messages"),
        (_messages(1001), "messages"),
        ("not a list", "messages"),
        ([*_messages(3), {"to": "not an address", "subject": "s", "body": "b"}], "messages[3].to"),
        ([*_messages(1), {"to": "a@example.com", "body": "b"}], "messages[1].subject"),
        ([{"to": "a@example.com", "subject": "s", "body": 7}], "messages[0].body"),
        ([{"to": "a@example.com", "subject": "s", "body": "b", "html": ["x"]}], "messages[0].html"),
        ([*_messages(2), "an email"], "messages[2]"),
        ([{"to": "a@example.com", "subject": "line\nbreak", "body": "b"}], "messages[0].subject"),
    ],
    ids=[
        "no-messages",
        "1001-messages",
        "not-a-list",
        "bad-to-at-3",
        "missing-subject",
        "body-not-a-string",
        "html-not-a-string",
        "message-not-an-object",
        "subject-with-a-line-break",
    ],
)
def test_an_invalid_batch_answers_422_naming_the_field_and_queues_nothing(
    app, client, user, stub_broker, messages, field
):
    _, headers = user

    response = client.post("/api/emails/batch", json={"messages": messages}, headers=headers)

    assert response.status_code == 422
    body = response.get_json()
    assert body["error"] == "invalid fields"
    assert field in body["fields"], body
    assert_nothing_written(app, stub_broker)


def test_a_batch_without_messages_answers_422(app, client, user, stub_broker):
    _, headers = user

    response = client.post("/api/emails/batch", json={}, headers=headers)

    assert response.status_code == 422
    assert response.get_json()["fields"] == {"messages": "is required"}
    assert_nothing_written(app, stub_broker)


def test_a_message_over_email_max_body_bytes_answers_413_naming_it_and_queues_nothing(
    app, client, user, stub_broker
):
    _, headers = user
    app.config["EMAIL_MAX_BODY_BYTES"] = 100
    messages = _messages(3)
    messages[1]["html"] = "x" * 101

    response = post_batch(client, headers, messages)

    assert response.status_code == 413
    assert set(response.get_json()["fields"]) == {"messages[1].body"}
    assert_nothing_written(app, stub_broker)


# --- Idempotency-Key -------------------------------------------------------------


def test_a_repeated_batch_with_its_key_answers_the_first_items_and_queues_nothing_more(
    app, client, user, stub_broker
):
    _, headers = user
    headers = {**headers, "Idempotency-Key": "batch-1"}
    first = post_batch(client, headers, _messages(4))

    # When the same batch comes again with the same key
    again = post_batch(client, headers, _messages(4))

    # Then it answers the first batch's items, in the same order
    assert (first.status_code, again.status_code) == (202, 202)
    assert again.get_json() == first.get_json()
    assert row_counts(app) == (4, 4)
    assert len(queued_messages(stub_broker)) == 4


def test_a_batch_key_reused_with_another_batch_answers_422_and_queues_nothing(
    app, client, user, stub_broker
):
    _, headers = user
    headers = {**headers, "Idempotency-Key": "batch-2"}
    post_batch(client, headers, _messages(2))
    changed = _messages(2)
    changed[1]["subject"] = "Changed"

    reused = post_batch(client, headers, changed)

    assert reused.status_code == 422
    assert reused.get_json() == {"error": "Idempotency-Key reused with a different request"}
    assert row_counts(app) == (2, 2)
    assert len(queued_messages(stub_broker)) == 2


def test_a_batch_key_is_one_namespace_with_the_single_endpoint(app, client, user, stub_broker):
    _, headers = user
    headers = {**headers, "Idempotency-Key": "shared-key"}
    single = client.post("/api/emails", json=GOOD, headers=headers)

    batch = post_batch(client, headers, [GOOD])

    assert single.status_code == 202
    assert batch.status_code == 422
    assert row_counts(app) == (1, 1)


def test_concurrent_batches_with_one_key_queue_once(app, client, user, stub_broker):
    _, headers = user
    headers = {**headers, "Idempotency-Key": "batch-race"}
    answers: list = []
    start = threading.Barrier(2)

    def post():
        start.wait()
        answers.append(post_batch(app.test_client(), headers, _messages(3)))

    # When two requests with one key arrive at once
    threads = [threading.Thread(target=post) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # Then both answer the same items, and one batch is queued
    assert [a.status_code for a in answers] == [202, 202]
    assert answers[0].get_json() == answers[1].get_json()
    assert row_counts(app) == (3, 3)
    assert len(queued_messages(stub_broker)) == 3


# --- quota ---------------------------------------------------------------------


def test_a_batch_that_would_pass_the_hourly_quota_answers_429_and_queues_nothing(
    app, client, user, stub_broker
):
    _, headers = user
    app.config["USER_EMAILS_PER_HOUR"] = 5
    assert post_batch(client, headers, _messages(3)).status_code == 202

    # When a batch of three more would make six this hour
    over = post_batch(client, headers, _messages(3))

    # Then it is refused whole
    assert over.status_code == 429
    assert int(over.headers["Retry-After"]) >= 1
    assert row_counts(app) == (3, 3)
    assert len(queued_messages(stub_broker)) == 3
    # and a batch that fits is queued
    assert post_batch(client, headers, _messages(2)).status_code == 202


# --- the database commit fails ---------------------------------------------------


def test_a_batch_whose_commit_fails_answers_503_and_publishes_nothing(
    app, client, user, stub_broker
):
    _, headers = user

    def refuse(connection):
        raise OperationalError("COMMIT", {}, Exception("injected: the commit fails"))

    with app.app_context():
        engine = db.engine
    event.listen(engine, "commit", refuse)
    try:
        response = post_batch(client, headers, _messages(3))
    finally:
        event.remove(engine, "commit", refuse)

    assert response.status_code == 503
    assert_nothing_written(app, stub_broker)
    with app.app_context():
        assert db.session.scalars(select(Email.id)).all() == []
