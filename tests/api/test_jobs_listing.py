"""GET /api/jobs: ownership, filters and newest-first keyset paging."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest

from tests.api.job_helpers import JOB_FIELDS, add_job, list_ids, walk_pages

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


@pytest.mark.parametrize(
    "raw",
    [b"2030-01-01T00:00:00+00:00|", b"2030-01-01T00:00:00+00:00|a\x00b", b"2030-01-01T00:00:00"],
    ids=["no-id", "nul-in-id", "no-separator"],
)
def test_cursor_no_row_could_hold_is_refused_in_words(client, user, raw):
    cursor = base64.urlsafe_b64encode(raw).decode()

    response = client.get(f"/api/jobs?cursor={cursor}", headers=user[1])

    assert response.status_code == 422
    assert response.get_json() == {
        "error": "invalid query parameters",
        "fields": {"cursor": "is not a valid cursor"},
    }


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
