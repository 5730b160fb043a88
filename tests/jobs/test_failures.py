"""Retry policy, permanent errors, dead letters and manual retry (StubBroker,
SQLite, a real aiosmtpd server)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from dramatiq.common import compute_backoff

from app import config
from app.db import db
from app.emails import SEND_EMAIL
from app.jobs import control, outbox, state
from app.jobs.kinds import JobKind
from app.models import Email, Job
from tests.support.claims import claim, record_failure

EMAIL = {"to": "kim@example.com", "subject": "Hi", "body": "Hello"}


def _send(client, headers) -> dict:
    response = client.post("/api/emails", json=EMAIL, headers=headers)
    assert response.status_code == 202
    return response.json


def _drain(stub_broker, stub_worker):
    stub_broker.join("emails", fail_fast=False)
    stub_worker.join()


def _job(app, job_id) -> Job:
    with app.app_context():
        job = db.session.get(Job, job_id)
        job.history  # noqa: B018
        return job


def test_backoff_grows_exponentially_with_jitter_within_the_configured_bounds():
    settings = config.from_env({"RETRY_MIN_BACKOFF_MS": "15000", "RETRY_MAX_BACKOFF_MS": "3600000"})
    low, high = settings["RETRY_MIN_BACKOFF_MS"], settings["RETRY_MAX_BACKOFF_MS"]
    for retries in range(12):
        delays = {compute_backoff(retries, factor=low, max_backoff=high)[1] for _ in range(50)}
        assert all(low <= delay <= high for delay in delays)
        assert len(delays) > 1  # jitter: retries of many jobs do not come back in step
        assert min(delays) >= min(low * 2**retries, high) // 2
    assert compute_backoff(0, factor=low, max_backoff=high)[1] < 2 * low


def test_failed_attempts_wait_at_least_the_minimum_backoff(
    app, client, user, stub_broker, stub_worker, smtp_server
):
    smtp_server.recorder.reply = "451 4.3.0 try again later"
    ids = _send(client, user[1])
    _drain(stub_broker, stub_worker)
    history = _job(app, ids["job_id"]).history
    minimum = config.from_env()["RETRY_MIN_BACKOFF_MS"] / 1000
    gaps = [
        (b.started_at - a.finished_at).total_seconds()
        for a, b in zip(history, history[1:], strict=False)
    ]
    assert gaps and all(gap >= minimum for gap in gaps)


def test_failed_attempt_with_retries_left_shows_retrying_and_next_retry_at(app, user):
    with app.app_context():
        job = state.new_job(SEND_EMAIL, args=["e"], max_retries=3)
        db.session.commit()
        attempt = claim(job.id)
        retry_at = job.created_at + timedelta(minutes=5)
        record_failure(attempt, TimeoutError("timed out"), retry_at=retry_at)
        job = db.session.get(Job, job.id, populate_existing=True)
        assert (job.status, job.next_retry_at, job.error_type) == (
            "retrying",
            retry_at,
            "TimeoutError",
        )


def test_permanently_refused_recipient_fails_at_once_without_retries(
    app, client, user, stub_broker, stub_worker, smtp_server
):
    smtp_server.recorder.rcpt_reply = "550 5.1.1 no such user"
    ids = _send(client, user[1])
    _drain(stub_broker, stub_worker)

    job = _job(app, ids["job_id"])
    assert (job.status, job.attempts, job.error_type) == ("failed", 1, "RecipientRefused")
    assert "550" in job.error_message
    assert [m.message_id for m in stub_broker.dead_letters] == [ids["job_id"]]
    email = client.get(f"/api/emails/{ids['email_id']}", headers=user[1]).json
    assert (email["status"], email["error"]["type"]) == ("failed", "RecipientRefused")


def test_temporary_refusal_is_retried_until_retries_run_out(
    app, client, user, stub_broker, stub_worker, smtp_server
):
    smtp_server.recorder.reply = "451 4.3.0 try again later"
    ids = _send(client, user[1])
    _drain(stub_broker, stub_worker)

    job = _job(app, ids["job_id"])
    max_retries = config.from_env()["EMAIL_MAX_RETRIES"]
    assert (job.status, job.attempts) == ("failed", max_retries + 1)
    assert len(job.history) == max_retries + 1
    assert {a.error_type for a in job.history} == {"SMTPTemporaryError"}
    assert [m.message_id for m in stub_broker.dead_letters] == [ids["job_id"]]


def test_smtp_server_down_is_retried(app, client, user, stub_broker, stub_worker, smtp_server):
    smtp_server.stop()
    ids = _send(client, user[1])
    _drain(stub_broker, stub_worker)
    job = _job(app, ids["job_id"])
    assert job.status == "failed"
    assert len(job.history) > 1
    assert job.history[0].error_type == "ConnectionRefusedError"


def test_retry_after_fixing_the_fault_succeeds_and_keeps_the_history(
    app, client, user, stub_broker, stub_worker, smtp_server
):
    smtp_server.recorder.rcpt_reply = "550 5.1.1 no such user"
    ids = _send(client, user[1])
    _drain(stub_broker, stub_worker)

    # When the fault is fixed and an admin retries the job
    smtp_server.recorder.rcpt_reply = None
    with app.app_context():
        control.retry(ids["job_id"])
    _drain(stub_broker, stub_worker)

    job = _job(app, ids["job_id"])
    assert job.status == "succeeded"
    assert [a.outcome for a in job.history] == ["failed", "succeeded"]
    assert len(smtp_server.messages) == 1
    with app.app_context():
        assert db.session.get(Email, ids["email_id"]).sent_at is not None


def test_a_second_retry_of_the_same_job_is_refused(app, client, user, stub_broker, smtp_server):
    smtp_server.recorder.rcpt_reply = "550 5.1.1 no such user"
    ids = _send(client, user[1])
    with app.app_context():
        job = db.session.get(Job, ids["job_id"])
        job.status = "failed"
        db.session.commit()
        control.retry(ids["job_id"])
        with pytest.raises(control.JobStateConflict):
            control.retry(ids["job_id"])


def test_dead_lettered_copy_from_before_a_retry_cannot_run_the_job(
    app, client, user, stub_broker, stub_worker, smtp_server
):
    # Given a job that failed, whose message sits in the dead-letter queue
    smtp_server.recorder.rcpt_reply = "550 5.1.1 no such user"
    ids = _send(client, user[1])
    _drain(stub_broker, stub_worker)
    [dead] = stub_broker.dead_letters
    smtp_server.recorder.rcpt_reply = None
    # And an admin's retry has run it to success
    with app.app_context():
        control.retry(ids["job_id"])
    _drain(stub_broker, stub_worker)
    # When an operator moves the old dead letter back onto the queue
    stub_broker.enqueue(dead._message.copy(options={}))
    _drain(stub_broker, stub_worker)
    # Then the job is not run again
    job = _job(app, ids["job_id"])
    assert [a.outcome for a in job.history] == ["failed", "succeeded"]
    assert len(smtp_server.messages) == 1


def test_stale_series_message_is_skipped_even_while_the_job_is_queued(app, user, stub_broker):
    with app.app_context():
        job = state.new_job(SEND_EMAIL, args=["e"], max_retries=0)
        db.session.commit()
        old = outbox.message_for(job)
        job.status = "failed"
        db.session.commit()
        state.requeue([job.id], published_at=None)
        db.session.commit()
        assert claim(job.id, series=old.options["series"]) is None
        assert claim(job.id, series=1).attempt == 1


def test_cancel_and_retry_state_rules(app, user, stub_broker):
    with app.app_context():
        job = state.new_job(SEND_EMAIL, args=["e"], max_retries=0)
        db.session.commit()
        with pytest.raises(control.JobStateConflict):
            control.retry(job.id)  # queued: nothing to retry
        control.cancel(job.id)
        assert db.session.get(Job, job.id).status == "cancelled"
        with pytest.raises(control.JobStateConflict):
            control.cancel(job.id)
        control.retry(job.id)
        assert db.session.get(Job, job.id, populate_existing=True).status == "queued"
        with pytest.raises(control.JobNotFound):
            control.retry("no-such-job")


def test_message_for_an_unknown_actor_is_dead_lettered_and_fails_its_job(
    app, user, stub_broker, stub_worker
):
    with app.app_context():
        unknown = JobKind("no_such_actor", "emails", time_limit_ms=0)
        job = state.new_job(unknown, args=[], max_retries=3)
        outbox.commit_and_publish(job)
        job_id = job.id
    _drain(stub_broker, stub_worker)
    job = _job(app, job_id)
    assert (job.status, job.error_type) == ("failed", "ActorNotFound")
    assert [m.message_id for m in stub_broker.dead_letters] == [job_id]
