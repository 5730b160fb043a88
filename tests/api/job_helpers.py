"""Shared by the GET /api/jobs tests: job rows in any state, and paging."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.db import db, utcnow
from tests.support import factories
from tests.support.claims import claim, record_failure

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
    "scheduled_for",
    "error",
    "result",
    "history",
}
ATTEMPT_FIELDS = {"attempt", "started_at", "finished_at", "outcome", "error"}


# --- helpers and fixtures --------------------------------------------------------


def add_job(app, *, user_id, created_at, actor="send_email", status="queued", **values) -> str:
    with app.app_context():
        job = factories.job(actor, user_id=user_id, created_at=created_at, status=status, **values)
        db.session.commit()
        return job.id


def fail_once(app, job_id: str, *, retry_at=None) -> None:
    """Run one real attempt of the job through ``app.jobs.state`` that raises."""
    with app.app_context():
        attempt = claim(job_id)
        try:
            raise ConnectionRefusedError("smtp server said no")
        except ConnectionRefusedError as error:
            record_failure(attempt, error, retry_at=retry_at)


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
