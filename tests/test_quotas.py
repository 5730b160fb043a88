"""Quotas per user (app/quotas.py): USER_EMAILS_PER_HOUR, USER_EXPORTS_PER_DAY and
USER_EXPORT_BYTES answer 429 with Retry-After and queue nothing; 0 is no limit;
EMAIL_MAX_BODY_BYTES answers 413. Concurrency on PostgreSQL is in
tests/integration/test_quotas_postgres.py."""

from __future__ import annotations

import threading
from datetime import timedelta

from sqlalchemy import func, select, update

from app import email_queue
from app.db import db, utcnow
from app.jobs import outbox
from app.models import Email, Export, Job
from tests.api.email_helpers import GOOD, post_email, queued_messages, row_counts
from tests.web.test_pages import csrf_token, sign_in


def _backdate_emails(app, user_id: int, age: timedelta) -> None:
    with app.app_context():
        db.session.execute(
            update(Email).where(Email.user_id == user_id).values(created_at=utcnow() - age)
        )
        db.session.commit()


def _retry_after(response) -> int:
    return int(response.headers["Retry-After"])


def _export(user_id: int, *, status="failed", age=timedelta(0), size=None) -> Export:
    """An export row of the user's (finished, unless ``status`` says otherwise)."""
    export = Export(
        user_id=user_id,
        kind="posts",
        format="csv",
        status=status,
        bytes=size,
        created_at=utcnow() - age,
        finished_at=utcnow() - age,
    )
    db.session.add(export)
    db.session.commit()
    return export


def _export_count(app) -> tuple[int, int]:
    """(exports, run_export jobs) in the database."""
    with app.app_context():
        exports = db.session.scalar(select(func.count()).select_from(Export))
        jobs = db.session.scalar(
            select(func.count()).select_from(Job).where(Job.actor == "run_export")
        )
        return exports, jobs


# --- USER_EMAILS_PER_HOUR ------------------------------------------------------


def test_email_over_the_hourly_quota_is_429_with_retry_after_and_queues_nothing(
    app, client, user, stub_broker
):
    # Given a user who queued their 3 emails of the hour, the first 20 minutes ago
    user_id, headers = user
    app.config["USER_EMAILS_PER_HOUR"] = 3
    first = post_email(client, headers)
    _backdate_emails(app, user_id, timedelta(minutes=20))
    for _ in range(2):
        assert post_email(client, headers).status_code == 202

    # When they queue a fourth
    response = post_email(client, headers)

    # Then it is refused until the first leaves the hour, and nothing is queued
    assert response.status_code == 429
    assert response.is_json and "USER_EMAILS_PER_HOUR" in response.get_json()["error"]
    assert 40 * 60 - 5 <= _retry_after(response) <= 40 * 60
    assert row_counts(app) == (3, 3)
    assert len(queued_messages(stub_broker)) == 3
    assert first.status_code == 202


def test_email_is_accepted_again_once_the_oldest_leaves_the_hour(app, client, user, stub_broker):
    user_id, headers = user
    app.config["USER_EMAILS_PER_HOUR"] = 2
    assert [post_email(client, headers).status_code for _ in range(3)] == [202, 202, 429]

    _backdate_emails(app, user_id, timedelta(minutes=61))

    assert post_email(client, headers).status_code == 202


def test_email_quota_is_each_users_own(app, client, user, other_user, stub_broker):
    app.config["USER_EMAILS_PER_HOUR"] = 1
    assert post_email(client, user[1]).status_code == 202
    assert post_email(client, user[1]).status_code == 429
    assert post_email(client, other_user[1]).status_code == 202


def _fill_the_hour(app, user_id: int, n: int) -> None:
    """``n`` emails the user queued in the last hour, written directly."""
    with app.app_context():
        for i in range(n):
            email, _ = email_queue.new_email(
                user_id=user_id, to="a@b.example", subject="s", body="."
            )
            email.user_queued = True
            email.created_at = utcnow() - timedelta(minutes=30, seconds=i)
        db.session.commit()


def test_default_email_quota_is_1000_an_hour_and_0_is_no_limit(app, client, user, stub_broker):
    user_id, headers = user
    assert app.config["USER_EMAILS_PER_HOUR"] == 1000
    _fill_the_hour(app, user_id, 1000)
    assert post_email(client, headers).status_code == 429

    app.config["USER_EMAILS_PER_HOUR"] = 0

    assert post_email(client, headers).status_code == 202


def test_the_email_delivering_an_export_does_not_count(app, client, user, stub_broker):
    # Given the emails the app queued for the user itself, as an export's delivery does
    user_id, headers = user
    app.config["USER_EMAILS_PER_HOUR"] = 1
    with app.app_context():
        jobs = [
            email_queue.new_email(user_id=user_id, to="alice@example.com", subject="s", body=".")[1]
            for _ in range(3)
        ]
        outbox.commit_and_publish(*jobs)

    # Then the user's own quota is untouched
    assert post_email(client, headers).status_code == 202
    assert post_email(client, headers).status_code == 429


def test_a_repeated_idempotency_key_is_answered_over_the_quota(app, client, user, stub_broker):
    _, headers = user
    app.config["USER_EMAILS_PER_HOUR"] = 1
    keyed = {**headers, "Idempotency-Key": "k1"}
    first = post_email(client, keyed)

    again = post_email(client, keyed)

    assert again.status_code == 202
    assert again.get_json() == first.get_json()
    assert post_email(client, headers).status_code == 429


# --- EMAIL_MAX_BODY_BYTES ------------------------------------------------------


def test_body_plus_html_over_the_limit_in_utf8_bytes_is_413_and_queues_nothing(
    app, client, user, stub_broker
):
    _, headers = user
    app.config["EMAIL_MAX_BODY_BYTES"] = 100
    body = "é" * 30  # 60 bytes in UTF-8, 30 characters

    over = post_email(client, headers, {**GOOD, "body": body, "html": "x" * 41})

    assert over.status_code == 413
    assert over.is_json and "at most 100" in over.get_json()["error"]
    assert row_counts(app) == (0, 0)
    assert queued_messages(stub_broker) == []
    at_limit = post_email(client, headers, {**GOOD, "body": body, "html": "x" * 40})
    assert at_limit.status_code == 202


def test_default_body_limit_is_256_kib(app, client, user, stub_broker):
    _, headers = user
    limit = 256 * 1024
    assert app.config["EMAIL_MAX_BODY_BYTES"] == limit

    assert post_email(client, headers, {**GOOD, "body": "x" * (limit + 1)}).status_code == 413
    assert post_email(client, headers, {**GOOD, "body": "x" * limit}).status_code == 202


# --- USER_EXPORTS_PER_DAY and USER_EXPORT_BYTES --------------------------------


def test_export_over_the_daily_quota_is_429_with_retry_after_and_queues_nothing(
    app, client, user, stub_broker
):
    # Given two exports today, the first 6 hours ago
    user_id, headers = user
    app.config["USER_EXPORTS_PER_DAY"] = 2
    with app.app_context():
        _export(user_id, age=timedelta(hours=6))
        _export(user_id, age=timedelta(hours=1))
        _export(user_id, age=timedelta(hours=25))  # yesterday's: not counted

    # When a third is asked for
    response = client.post("/api/exports", json={"kind": "posts", "format": "csv"}, headers=headers)

    # Then it is refused until the first is a day old, and nothing is queued
    assert response.status_code == 429
    assert "USER_EXPORTS_PER_DAY" in response.get_json()["error"]
    assert 18 * 3600 - 5 <= _retry_after(response) <= 18 * 3600
    assert _export_count(app) == (3, 0)
    assert queued_messages(stub_broker, "exports") == []


def test_export_bytes_over_the_quota_are_429_until_enough_files_expire(
    app, client, user, stub_broker
):
    # Given kept files of 600 and 500 bytes (and an expired one of 10000)
    user_id, headers = user
    app.config["USER_EXPORT_BYTES"] = 1000
    ttl = app.config["EXPORT_LINK_TTL_S"]
    with app.app_context():
        _export(user_id, status="succeeded", size=600, age=timedelta(hours=2))
        _export(user_id, status="succeeded", size=500, age=timedelta(hours=1))
        _export(user_id, status="expired", size=10_000, age=timedelta(seconds=ttl + 10))

    response = client.post("/api/exports", json={"kind": "posts", "format": "csv"}, headers=headers)

    # Then it waits for the 600-byte file's link to expire, which leaves 500 < 1000
    assert response.status_code == 429
    assert "USER_EXPORT_BYTES" in response.get_json()["error"]
    assert ttl - 2 * 3600 - 5 <= _retry_after(response) <= ttl - 2 * 3600
    assert _export_count(app) == (3, 0)


def test_export_files_past_their_link_are_not_counted(app, client, user, stub_broker):
    user_id, headers = user
    app.config["USER_EXPORT_BYTES"] = 1000
    ttl = app.config["EXPORT_LINK_TTL_S"]
    with app.app_context():
        # not yet marked expired by the cleanup, but its link has run out
        _export(user_id, status="succeeded", size=5000, age=timedelta(seconds=ttl + 10))

    response = client.post("/api/exports", json={"kind": "posts", "format": "csv"}, headers=headers)

    assert response.status_code == 202


def test_export_quotas_default_and_0_is_no_limit(app, client, user, stub_broker):
    user_id, headers = user
    assert (app.config["USER_EXPORTS_PER_DAY"], app.config["USER_EXPORT_BYTES"]) == (20, 1024**3)
    with app.app_context():
        for _ in range(20):
            _export(user_id)
        _export(user_id, status="succeeded", size=1024**3)
    body = {"kind": "posts", "format": "csv"}
    refused = client.post("/api/exports", json=body, headers=headers)
    assert refused.status_code == 429

    app.config["USER_EXPORTS_PER_DAY"] = 0
    assert client.post("/api/exports", json=body, headers=headers).status_code == 429  # bytes
    app.config["USER_EXPORT_BYTES"] = 0

    assert client.post("/api/exports", json=body, headers=headers).status_code == 202


def test_the_page_says_why_an_export_over_the_quota_was_not_started(app, client, user):
    user_id, _ = user
    app.config["USER_EXPORTS_PER_DAY"] = 1
    with app.app_context():
        _export(user_id)
    sign_in(client)

    response = client.post(
        "/exports", data={"format": "csv", "csrf_token": csrf_token(client, "/")}
    )

    assert response.status_code == 303
    page = client.get("/").get_data(as_text=True)
    assert "USER_EXPORTS_PER_DAY" in page and "Try again in" in page
    assert _export_count(app) == (1, 0)


# --- concurrent requests -------------------------------------------------------


def race(n: int, call) -> list:
    """``call()`` from ``n`` threads at once; what each returned."""
    start, results, lock = threading.Barrier(n), [], threading.Lock()

    def run():
        start.wait()
        result = call()
        with lock:
            results.append(result)

    threads = [threading.Thread(target=run) for _ in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def concurrent_emails_never_exceed_the_quota(app, headers) -> None:
    """16 requests at once against a quota of 5 with 2 used: 3 queued, 13 refused."""
    app.config["USER_EMAILS_PER_HOUR"] = 5
    client = app.test_client()
    assert [post_email(client, headers).status_code for _ in range(2)] == [202, 202]

    statuses = race(16, lambda: post_email(app.test_client(), headers).status_code)

    assert sorted(statuses) == [202] * 3 + [429] * 13
    assert row_counts(app) == (5, 5)


def test_concurrent_emails_never_exceed_the_quota_on_sqlite(app, user, stub_broker):
    concurrent_emails_never_exceed_the_quota(app, user[1])
