"""GET /api/jobs/<id> and GET /api/jobs: the contract's job shape, ownership,
admin-only tracebacks, filters and newest-first keyset paging."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest

from app.db import db, utcnow
from app.jobs import outbox, state
from app.models import Job

JOB_FIELDS = {
    "id",
    "actor",
    "queue",
    "status",
    "progress",
    "attempts",
    "max_retries",
    "created_at",
    "started_at",
    "finished_at",
    "next_retry_at",
    "error",
    "result",
    "history",
}
ATTEMPT_FIELDS = {"attempt", "started_at", "finished_at", "outcome", "error"}


# --- helpers and fixtures --------------------------------------------------------


def add_job(app, *, user_id, created_at, actor="send_email", status="queued", **values) -> str:
    with app.app_context():
        job = Job(
            user_id=user_id,
            actor=actor,
            queue="emails" if actor == "send_email" else "exports",
            args=[],
            status=status,
            created_at=created_at,
            **values,
        )
        db.session.add(job)
        db.session.commit()
        return job.id


def fail_once(app, job_id: str, *, retry_at=None) -> None:
    """Run one real attempt of the job through ``app.jobs.state`` that raises."""
    with app.app_context():
        attempt = state.start_attempt(job_id, redelivered=False)
        try:
            raise ConnectionRefusedError("smtp server said no")
        except ConnectionRefusedError as error:
            state.fail_attempt(job_id, attempt, error, retry_at=retry_at)


def is_utc_iso(value: str) -> bool:
    return datetime.fromisoformat(value).utcoffset() == timedelta(0)


@pytest.fixture()
def failed_job(app, user):
    """A job of the user's that failed after a retry: two attempts with tracebacks."""
    user_id, _ = user
    job_id = add_job(app, user_id=user_id, created_at=utcnow(), max_retries=1)
    fail_once(app, job_id, retry_at=utcnow() + timedelta(seconds=1))
    fail_once(app, job_id)
    return job_id


@pytest.fixture()
def jobs(app, user, other_user):
    """Jobs of two users and one of nobody's (a periodic job), three of them
    created at the same instant. Returns ``{owner: [ids newest first]}`` with
    owner "user", "other" or "system"; "all" holds every id newest first."""
    user_id, other_id = user[0], other_user[0]
    base = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
    specs = [
        # (owner, minutes after base, actor, status)
        ("user", 0, "send_email", "succeeded"),
        ("user", 1, "run_export", "failed"),
        ("other", 2, "send_email", "queued"),
        ("user", 3, "send_email", "queued"),
        ("user", 3, "send_email", "running"),  # same instant:
        ("user", 3, "run_export", "queued"),  # ordered by id
        ("system", 4, "cleanup", "succeeded"),
        ("other", 5, "run_export", "retrying"),
        ("user", 6, "send_email", "failed"),
        ("user", 7, "send_email", "cancelled"),
    ]
    owners = {"user": user_id, "other": other_id, "system": None}
    rows = []
    for owner, minutes, actor, status in specs:
        created_at = base + timedelta(minutes=minutes)
        job_id = add_job(
            app, user_id=owners[owner], created_at=created_at, actor=actor, status=status
        )
        rows.append((created_at, job_id, owner, actor, status))
    rows.sort(reverse=True)  # newest first, ties by id descending
    result = {"all": [job_id for _, job_id, *_ in rows], "rows": rows}
    for owner in owners:
        result[owner] = [job_id for _, job_id, o, *_ in rows if o == owner]
    return result


def list_ids(client, headers, query: str = "") -> list[str]:
    response = client.get(f"/api/jobs?{query}", headers=headers)
    assert response.status_code == 200, response.get_json()
    return [item["id"] for item in response.get_json()["items"]]


def walk_pages(client, headers, query: str, cursor: str | None = None) -> tuple[list[str], int]:
    """Follow next_cursor to the end; returns every id seen and the page count."""
    seen, pages = [], 0
    while True:
        url = f"/api/jobs?{query}" + (f"&cursor={cursor}" if cursor else "")
        body = client.get(url, headers=headers).get_json()
        seen += [item["id"] for item in body["items"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            return seen, pages
        assert pages < 100, "paging does not end"


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
    assert job["error"] == {"type": "ConnectionRefusedError", "message": "smtp server said no"}
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
        assert entry["error"] == {
            "type": "ConnectionRefusedError",
            "message": "smtp server said no",
        }
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
        attempt = state.start_attempt(job_id, redelivered=False)
        state.succeed(job_id, attempt, {"rows": 3})

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
        job = state.new_job(
            actor="send_email", queue="emails", args=["x"], max_retries=5, user_id=user_id
        )
        outbox.commit_and_publish(job)
        job_id = job.id

    body = client.get(f"/api/jobs/{job_id}", headers=headers).get_json()

    assert (body["id"], body["status"], body["max_retries"]) == (job_id, "queued", 5)


# --- GET /api/jobs ------------------------------------------------------------------


def test_user_lists_only_own_jobs_newest_first(client, user, jobs):
    body = client.get("/api/jobs", headers=user[1]).get_json()

    assert [item["id"] for item in body["items"]] == jobs["user"]
    assert body["next_cursor"] is None
    for item in body["items"]:
        assert set(item) == JOB_FIELDS


def test_other_user_lists_only_their_jobs(client, other_user, jobs):
    assert list_ids(client, other_user[1]) == jobs["other"]


def test_admin_lists_every_job_newest_first(client, admin, jobs):
    assert list_ids(client, admin[1], "limit=100") == jobs["all"]


def test_listed_jobs_carry_traceback_for_admin_only(client, user, admin, failed_job):
    [mine] = client.get("/api/jobs", headers=user[1]).get_json()["items"]
    [seen_by_admin] = client.get("/api/jobs", headers=admin[1]).get_json()["items"]

    assert all("traceback" not in entry for entry in mine["history"])
    assert all(entry["traceback"] for entry in seen_by_admin["history"])


def test_user_with_no_jobs_gets_an_empty_page(client, user):
    body = client.get("/api/jobs", headers=user[1]).get_json()

    assert body == {"items": [], "next_cursor": None}


@pytest.mark.parametrize("status", ["queued", "failed", "succeeded", "cancelled", "retrying"])
def test_status_filter_keeps_only_that_status(client, admin, jobs, status):
    expected = [job_id for _, job_id, _, _, s in jobs["rows"] if s == status]

    assert list_ids(client, admin[1], f"status={status}") == expected


@pytest.mark.parametrize("actor", ["send_email", "run_export", "cleanup", "no_such_actor"])
def test_actor_filter_keeps_only_that_actor(client, admin, jobs, actor):
    expected = [job_id for _, job_id, _, a, _ in jobs["rows"] if a == actor]

    assert list_ids(client, admin[1], f"actor={actor}") == expected


def test_status_and_actor_filters_combine_with_ownership(client, user, jobs):
    expected = [
        job_id
        for _, job_id, owner, actor, status in jobs["rows"]
        if owner == "user" and actor == "send_email" and status == "queued"
    ]
    assert len(expected) == 1

    assert list_ids(client, user[1], "status=queued&actor=send_email") == expected


def test_empty_filters_are_ignored(client, user, jobs):
    assert list_ids(client, user[1], "status=&actor=&cursor=") == jobs["user"]


@pytest.mark.parametrize("limit", [1, 2, 3, 4, 6, 7])
def test_paging_visits_every_own_job_exactly_once(client, user, jobs, limit):
    seen, pages = walk_pages(client, user[1], f"limit={limit}")

    assert seen == jobs["user"]
    assert len(seen) == len(set(seen))
    assert pages == max(1, -(-len(jobs["user"]) // limit))


@pytest.mark.parametrize("limit", [1, 3, 10])
def test_admin_paging_visits_every_job_exactly_once(client, admin, jobs, limit):
    seen, _ = walk_pages(client, admin[1], f"limit={limit}")

    assert seen == jobs["all"]
    assert len(seen) == len(set(seen))


def test_paging_with_a_filter_stays_within_the_filter(client, admin, jobs):
    expected = [job_id for _, job_id, _, _, s in jobs["rows"] if s == "queued"]

    seen, pages = walk_pages(client, admin[1], "status=queued&limit=1")

    assert seen == expected
    assert pages == len(expected)


def test_page_of_exactly_the_remaining_jobs_has_no_next_cursor(client, user, jobs):
    body = client.get(f"/api/jobs?limit={len(jobs['user'])}", headers=user[1]).get_json()

    assert len(body["items"]) == len(jobs["user"])
    assert body["next_cursor"] is None


def test_default_page_holds_twenty_jobs(app, client, user):
    user_id, headers = user
    base = datetime(2030, 1, 1, tzinfo=UTC)
    for minutes in range(25):
        add_job(app, user_id=user_id, created_at=base + timedelta(minutes=minutes))

    body = client.get("/api/jobs", headers=headers).get_json()

    assert len(body["items"]) == 20
    assert body["next_cursor"]


def test_job_created_after_the_first_page_does_not_shift_later_pages(app, client, user, jobs):
    # Given the first page
    first = client.get("/api/jobs?limit=3", headers=user[1]).get_json()

    # When a newer job is added before the next page is read
    add_job(app, user_id=user[0], created_at=datetime(2031, 1, 1, tzinfo=UTC))
    rest, _ = walk_pages(client, user[1], "limit=3", cursor=first["next_cursor"])

    # Then the remaining pages hold exactly the older jobs
    assert [item["id"] for item in first["items"]] + rest == jobs["user"]


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ("status=bogus", "status"),
        ("status=QUEUED", "status"),
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=-1", "limit"),
        ("limit=abc", "limit"),
        ("limit=1.5", "limit"),
        ("limit=", "limit"),
        ("cursor=!!!!", "cursor"),
        ("cursor=" + base64.urlsafe_b64encode(b"not-a-cursor").decode(), "cursor"),
        ("cursor=" + base64.urlsafe_b64encode(b"yesterday|some-id").decode(), "cursor"),
        ("cursor=" + base64.urlsafe_b64encode(b"\xff\xfe|x").decode(), "cursor"),
    ],
)
def test_invalid_query_parameter_answers_422_naming_it(client, user, query, parameter):
    response = client.get(f"/api/jobs?{query}", headers=user[1])

    assert response.status_code == 422
    body = response.get_json()
    assert body["error"]
    assert list(body["fields"]) == [parameter]


def test_every_invalid_parameter_is_named_at_once(client, user):
    response = client.get("/api/jobs?status=bogus&limit=0", headers=user[1])

    assert response.status_code == 422
    assert set(response.get_json()["fields"]) == {"status", "limit"}


def test_superscript_digit_limit_answers_422_not_500(client, user):
    response = client.get("/api/jobs?limit=%C2%B2", headers=user[1])

    assert response.status_code == 422
    assert list(response.get_json()["fields"]) == ["limit"]


def test_cursor_with_naive_timestamp_answers_422_not_500(client, user):
    cursor = base64.urlsafe_b64encode(b"2030-01-01T00:00:00|some-id").decode()

    response = client.get(f"/api/jobs?cursor={cursor}", headers=user[1])

    assert response.status_code == 422
    assert list(response.get_json()["fields"]) == ["cursor"]


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "Token abc"}],
    ids=["no-token", "bad-token", "wrong-scheme"],
)
def test_listing_without_a_valid_token_answers_401(client, jobs, headers):
    response = client.get("/api/jobs", headers=headers)

    assert response.status_code == 401
    assert response.get_json()["error"]
