"""GET /api/jobs/<id>: the contract's job shape, ownership and admin-only tracebacks."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from app.db import utcnow
from app.emails import SEND_EMAIL
from app.jobs import outbox, state
from tests.api.job_helpers import ATTEMPT_FIELDS, JOB_FIELDS, add_job, fail_once, is_utc_iso
from tests.support.claims import claim, record_success

UNREACHABLE = "A server it needs could not be reached"

# --- GET /api/jobs/<id> ------------------------------------------------------------


def test_owner_gets_a_job_with_every_contract_field(app, client, user, failed_job):
    _, headers = user

    response = client.get(f"/api/jobs/{failed_job}", headers=headers)

    assert response.status_code == 200
    job = response.get_json()
    assert set(job) == JOB_FIELDS
    assert job["id"] == failed_job
    assert (job["actor"], job["queue"], job["status"]) == ("send_email", "emails", "failed")
    assert (job["attempts"], job["max_retries"], job["progress"]) == (2, 1, 0)
    # the owner reads what went wrong in words of the app's, never the raw error
    assert job["error"] == {"type": "ConnectionRefusedError", "message": UNREACHABLE}
    assert job["result"] is None
    assert job["next_retry_at"] is None
    for name in ("created_at", "started_at", "finished_at"):
        assert is_utc_iso(job[name]), name


def test_history_has_one_entry_per_attempt_without_traceback_for_the_owner(
    client, user, failed_job
):
    _, headers = user

    history = client.get(f"/api/jobs/{failed_job}", headers=headers).get_json()["history"]

    assert [entry["attempt"] for entry in history] == [1, 2]
    for entry in history:
        assert set(entry) == ATTEMPT_FIELDS  # no traceback
        assert entry["outcome"] == "failed"
        assert entry["error"] == {"type": "ConnectionRefusedError", "message": UNREACHABLE}
        assert is_utc_iso(entry["started_at"]) and is_utc_iso(entry["finished_at"])


def test_admin_sees_each_attempts_traceback(client, admin, failed_job):
    _, headers = admin

    response = client.get(f"/api/jobs/{failed_job}", headers=headers)

    assert response.status_code == 200
    history = response.get_json()["history"]
    assert len(history) == 2
    for entry in history:
        assert set(entry) == ATTEMPT_FIELDS | {"traceback"}
        assert "Traceback (most recent call last)" in entry["traceback"]
        assert "ConnectionRefusedError: smtp server said no" in entry["traceback"]


def test_retrying_job_shows_next_retry_at(app, client, user):
    user_id, headers = user
    job_id = add_job(app, user_id=user_id, created_at=utcnow(), max_retries=3)
    fail_once(app, job_id, retry_at=utcnow() + timedelta(minutes=5))

    job = client.get(f"/api/jobs/{job_id}", headers=headers).get_json()

    assert job["status"] == "retrying"
    assert is_utc_iso(job["next_retry_at"])
    assert datetime.fromisoformat(job["next_retry_at"]) > utcnow()
    assert job["finished_at"] is None
    assert [entry["outcome"] for entry in job["history"]] == ["failed"]


def test_new_job_has_null_times_and_empty_history(app, client, user):
    user_id, headers = user
    job_id = add_job(app, user_id=user_id, created_at=utcnow())

    job = client.get(f"/api/jobs/{job_id}", headers=headers).get_json()

    assert job["status"] == "queued"
    assert (job["started_at"], job["finished_at"], job["next_retry_at"]) == (None, None, None)
    assert (job["attempts"], job["error"], job["history"]) == (0, None, [])


def test_succeeded_job_shows_its_result(app, client, user):
    user_id, headers = user
    job_id = add_job(app, user_id=user_id, created_at=utcnow())
    with app.app_context():
        record_success(claim(job_id), {"rows": 3})

    job = client.get(f"/api/jobs/{job_id}", headers=headers).get_json()

    assert (job["status"], job["progress"], job["result"]) == ("succeeded", 100, {"rows": 3})
    assert [entry["outcome"] for entry in job["history"]] == ["succeeded"]
    assert job["history"][0]["error"] is None


def test_another_users_job_answers_404_not_403(client, other_user, failed_job):
    response = client.get(f"/api/jobs/{failed_job}", headers=other_user[1])

    assert response.status_code == 404
    assert response.get_json()["error"]


def test_another_users_job_looks_the_same_as_an_unknown_one(client, other_user, failed_job):
    theirs = client.get(f"/api/jobs/{failed_job}", headers=other_user[1])
    unknown = client.get("/api/jobs/00000000-0000-0000-0000-000000000000", headers=other_user[1])

    assert theirs.status_code == unknown.status_code == 404
    assert theirs.get_json() == unknown.get_json()


def test_admin_gets_any_users_job(client, admin, failed_job):
    response = client.get(f"/api/jobs/{failed_job}", headers=admin[1])

    assert response.status_code == 200
    assert response.get_json()["id"] == failed_job


def test_job_without_owner_is_visible_to_admin_only(app, client, user, admin):
    job_id = add_job(app, user_id=None, created_at=utcnow(), actor="cleanup")

    assert client.get(f"/api/jobs/{job_id}", headers=user[1]).status_code == 404
    assert client.get(f"/api/jobs/{job_id}", headers=admin[1]).status_code == 200


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}],
    ids=["no-token", "bad-token"],
)
def test_get_job_without_a_valid_token_answers_401(client, failed_job, headers):
    response = client.get(f"/api/jobs/{failed_job}", headers=headers)

    assert response.status_code == 401
    assert response.get_json()["error"]


def test_job_created_through_the_outbox_is_readable(app, client, user, stub_broker):
    user_id, headers = user
    with app.app_context():
        job = state.new_job(SEND_EMAIL, args=["x"], max_retries=5, user_id=user_id)
        outbox.commit_and_publish(job)
        job_id = job.id

    body = client.get(f"/api/jobs/{job_id}", headers=headers).get_json()

    assert (body["id"], body["status"], body["max_retries"]) == (job_id, "queued", 5)
