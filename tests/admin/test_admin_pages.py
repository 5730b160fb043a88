"""The admin pages through the test client: who may see and use them (pages,
forms, CSRF, and the API's retry and cancel), and the jobs list: counts,
filters, search, keyset paging, Retry and Cancel of selected or matching jobs.
A job's page and the failed emails page: ``test_admin_job_and_emails.py``."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from app import bulk_actions
from app.db import db
from app.models import AuditEntry, Job
from tests.admin.conftest import (
    csrf_token,
    listed_ids,
    make_email,
    make_job,
    published_ids,
    signed_in,
    status_of,
)

ROLES = {"anonymous": None, "user": "alice@example.com", "admin": "admin@example.com"}


# --- who may do what -------------------------------------------------------------------------


@pytest.fixture()
def everyone(app, user, admin):
    return {role: signed_in(app, email) for role, email in ROLES.items()}


@pytest.mark.parametrize("path", ["/admin/jobs", "/admin/jobs/{job}", "/admin/emails"])
def test_pages_send_anonymous_to_login_refuse_users_and_show_admins(app, everyone, path):
    job_id = make_job(app, error_type="Boom", attempts=1)
    url = path.format(job=job_id)
    anonymous = everyone["anonymous"].get(url)
    assert anonymous.status_code == 302
    assert anonymous.headers["Location"].startswith("/login?next=/admin/")
    assert everyone["user"].get(url).status_code == 403
    assert everyone["admin"].get(url).status_code == 200


@pytest.mark.parametrize("role, expected", [("anonymous", 302), ("user", 403), ("admin", 303)])
@pytest.mark.parametrize(
    "path", ["/admin/jobs/actions", "/admin/jobs/{job}/retry", "/admin/jobs/{job}/cancel"]
)
def test_job_forms_need_an_admin(app, everyone, stub_broker, path, role, expected):
    job_id = make_job(app)
    client = everyone[role]
    data = {"action": "retry", "job_id": job_id, "csrf_token": csrf_token(client)}
    response = client.post(path.format(job=job_id), data=data)
    assert response.status_code == expected
    if role == "anonymous":
        assert response.headers["Location"].startswith("/login")
    if role == "admin":
        assert status_of(app, job_id) == ("cancelled" if path.endswith("cancel") else "queued")
    else:
        assert status_of(app, job_id) == "failed"
        assert stub_broker.queues["emails"].qsize() == 0


@pytest.mark.parametrize("role, expected", [("anonymous", 302), ("user", 403), ("admin", 303)])
def test_resend_form_needs_an_admin(app, everyone, user, stub_broker, role, expected):
    email_id, job_id = make_email(app, user[0], job_status="failed")
    client = everyone[role]
    response = client.post(
        "/admin/emails/resend", data={"one": email_id, "csrf_token": csrf_token(client)}
    )
    assert response.status_code == expected
    assert status_of(app, job_id) == ("queued" if role == "admin" else "failed")


@pytest.mark.parametrize(
    "action, admin_status, admin_job_status",
    [("retry", 202, "queued"), ("cancel", 200, "cancelled")],
)
def test_api_retry_and_cancel_need_an_admin_token(
    app, client, user, admin, stub_broker, action, admin_status, admin_job_status
):
    job_id = make_job(app)
    url = f"/api/jobs/{job_id}/{action}"
    assert client.post(url).status_code == 401
    assert client.post(url, headers={"Authorization": "Bearer nonsense"}).status_code == 401
    assert client.post(url, headers=user[1]).status_code == 403
    assert status_of(app, job_id) == "failed"
    response = client.post(url, headers=admin[1])
    assert response.status_code == admin_status
    assert response.json == {"job_id": job_id, "status": admin_job_status}


@pytest.mark.parametrize(
    "path, data",
    [
        ("/admin/jobs/actions", {"action": "retry"}),
        ("/admin/jobs/actions", {"action": "retry_all", "status": "failed"}),
        ("/admin/jobs/{job}/retry", {}),
        ("/admin/jobs/{job}/cancel", {}),
        ("/admin/emails/resend", {}),
    ],
)
def test_admin_form_without_csrf_token_is_refused_and_changes_nothing(
    app, admin_client, stub_broker, path, data
):
    job_id = make_job(app)
    response = admin_client.post(path.format(job=job_id), data={"job_id": job_id, **data})
    assert response.status_code == 400
    assert status_of(app, job_id) == "failed"
    assert stub_broker.queues["emails"].qsize() == 0


def test_admin_link_is_shown_to_admins_only(app, admin_client, user_client):
    assert 'href="/admin"' in admin_client.get("/").get_data(as_text=True)
    assert 'href="/admin"' not in user_client.get("/").get_data(as_text=True)


# --- the jobs list ---------------------------------------------------------------------------


def counts(html: str) -> dict[str, int]:
    pairs = re.findall(r'data-status="(\w+)">\s*<span class="n">(\d+)</span>', html)
    return {status: int(n) for status, n in pairs}


def test_counts_per_status_cover_every_state_and_follow_the_actor_filter(app, admin_client):
    for minutes, (actor, status) in enumerate(
        [("send_email", "failed")] * 3
        + [("send_email", "succeeded")] * 2
        + [("run_export", "failed"), ("run_export", "running"), ("cleanup", "queued")]
    ):
        make_job(app, actor=actor, status=status, minutes=minutes)
    html = admin_client.get("/admin/jobs").get_data(as_text=True)
    assert counts(html) == {
        "scheduled": 0, "queued": 1, "running": 1, "retrying": 0, "succeeded": 2, "failed": 4,
        "cancelled": 0,
    }  # fmt: skip
    html = admin_client.get("/admin/jobs?actor=send_email").get_data(as_text=True)
    assert counts(html)["failed"] == 3
    assert counts(html)["running"] == 0
    # Each count links to its status, keeping the actor filter
    assert 'href="/admin/jobs?status=failed&amp;actor=send_email"' in html


def test_status_and_actor_filters_newest_first(app, admin_client):
    old = make_job(app, actor="send_email", minutes=1)
    new = make_job(app, actor="send_email", minutes=2)
    make_job(app, actor="run_export", minutes=3)
    make_job(app, actor="send_email", status="succeeded", minutes=4)
    html = admin_client.get("/admin/jobs?status=failed&actor=send_email").get_data(as_text=True)
    assert listed_ids(html) == [new, old]


def test_search_finds_errors_arguments_and_the_exact_id(app, admin_client):
    smtp = make_job(app, error_type="SMTPServerDisconnected", error_message="Connection lost")
    refused = make_job(app, error_type="RecipientRefused", error_message="550 No Such User")
    export = make_job(app, actor="run_export", args=["export-7f3a-Quarterly"], minutes=1)

    def search(q):
        return set(listed_ids(admin_client.get("/admin/jobs", query_string={"q": q}).text))

    assert search("smtpserver") == {smtp}  # error type, any case
    assert search("no such user") == {refused}  # error message, any case
    assert search("7F3A-quarterly") == {export}  # JSON arguments as text
    assert search(export) == {export}  # the job id
    assert search(export[:8]) == set()  # only the whole id
    assert search("%") == set()  # LIKE wildcards are literal
    html = admin_client.get("/admin/jobs", query_string={"q": "refused"}).text
    assert counts(html)["failed"] == 1


def test_keyset_paging_visits_each_job_once_and_keeps_the_filters(app, admin_client):
    failed = {make_job(app, minutes=i // 3) for i in range(110)}  # ties on created_at
    for i in range(5):
        make_job(app, status="succeeded", minutes=i)
    seen, pages = [], 0
    url = "/admin/jobs?status=failed"
    while url:
        html = admin_client.get(url).get_data(as_text=True)
        seen += listed_ids(html)
        pages += 1
        older = re.search(r'<a href="([^"]+)" id="older">', html)
        url = older.group(1).replace("&amp;", "&") if older else None
        if url:
            assert "status=failed" in url and "cursor=" in url
    assert pages == 3
    assert len(seen) == len(set(seen)) == 110
    assert set(seen) == failed


def test_a_bad_cursor_is_a_400_not_a_500(admin_client):
    assert admin_client.get("/admin/jobs?cursor=bm9wZQ").status_code == 400
    assert admin_client.get("/admin/emails?cursor=!!!").status_code == 400


# --- retry and cancel ------------------------------------------------------------------------


def post_action(client, action, job_ids=(), **filters):
    data = {"action": action, "job_id": list(job_ids), "csrf_token": csrf_token(client), **filters}
    return client.post("/admin/jobs/actions", data=data)


def test_retry_selected_queues_failed_jobs_publishes_them_and_keeps_history(
    app, admin_client, stub_broker
):
    first = make_job(app, error_type="Boom", attempts=3)
    second = make_job(app, status="cancelled", minutes=1)
    untouched = make_job(app, minutes=2)
    response = post_action(admin_client, "retry", [first, second], status="failed", q="x")
    assert response.status_code == 303
    assert response.headers["Location"] == "/admin/jobs?status=failed&q=x"
    assert "Retried 2 jobs." in admin_client.get(response.headers["Location"]).text
    assert [status_of(app, j) for j in (first, second, untouched)] == ["queued", "queued", "failed"]
    assert sorted(published_ids(stub_broker, "emails")) == sorted([first, second])
    with app.app_context():
        job = db.session.get(Job, first)
        assert [a.attempt for a in job.history] == [1, 2, 3]
        assert (job.series, job.attempts) == (1, 3)


def test_retrying_a_job_that_is_not_failed_or_cancelled_is_skipped(app, admin_client, stub_broker):
    done = make_job(app, status="succeeded")
    failed = make_job(app, minutes=1)
    response = post_action(admin_client, "retry", [done, failed])
    html = admin_client.get(response.headers["Location"]).text
    assert "Retried 1 job; skipped 1 that was not failed or cancelled." in html
    assert (status_of(app, done), status_of(app, failed)) == ("succeeded", "queued")
    assert published_ids(stub_broker, "emails") == [failed]

    response = admin_client.post(
        f"/admin/jobs/{done}/retry", data={"csrf_token": csrf_token(admin_client)}
    )
    assert response.status_code == 303
    assert (
        "Not retried: the job is succeeded" in admin_client.get(response.headers["Location"]).text
    )


def test_cancel_selected_cancels_what_can_be_cancelled(app, admin_client, stub_broker):
    queued = make_job(app, status="queued")
    failed = make_job(app, minutes=1)
    running = make_job(app, status="running", minutes=2)
    response = post_action(admin_client, "cancel", [queued, failed, running])
    html = admin_client.get(response.headers["Location"]).text
    assert "Cancelled 2 jobs; skipped 1 that was not queued, retrying or failed." in html
    statuses = [status_of(app, j) for j in (queued, failed, running)]
    assert statuses == ["cancelled", "cancelled", "running"]


def test_an_action_with_nothing_selected_says_so(app, admin_client):
    response = post_action(admin_client, "retry")
    assert "Select at least one job" in admin_client.get(response.headers["Location"]).text


def test_retry_all_matching_confirms_the_count_then_runs_a_bulk_action(
    app, admin_client, stub_broker
):
    matching = {make_job(app, error_message="timed out", minutes=i) for i in range(3)}
    other_error = make_job(app, error_message="refused", minutes=4)
    other_actor = make_job(app, actor="run_export", error_message="timed out", minutes=5)
    cancelled = make_job(app, status="cancelled", error_message="timed out", minutes=6)
    page = admin_client.get("/admin/jobs?actor=send_email&q=timed").text
    assert "Retry all 3 failed matching" in page

    # First the confirmation, which says how many and changes nothing.
    confirmation = post_action(admin_client, "retry_all", actor="send_email", q="timed")
    assert confirmation.status_code == 200
    assert "Retry 3 jobs?" in confirmation.text
    assert {status_of(app, j) for j in matching} == {"failed"}
    with app.app_context():
        assert db.session.scalars(select(Job).where(Job.actor == "bulk_action")).all() == []

    response = post_action(
        admin_client, "retry_all", actor="send_email", q="timed", confirmed="yes"
    )
    assert response.status_code == 303
    with app.app_context():
        bulk = db.session.scalars(select(Job).where(Job.actor == "bulk_action")).one()
        assert response.headers["Location"] == f"/admin/jobs/{bulk.id}"
        assert bulk_actions.run(bulk.id) == {"matched": 3, "done": 3, "skipped": 0}
        entry = db.session.scalars(select(AuditEntry)).one()
        assert (entry.action, entry.user_email, entry.target) == (
            "bulk_retry",
            "admin@example.com",
            {"status": "failed", "actor": "send_email", "q": "timed"},
        )
    assert "Bulk retry" in admin_client.get(response.headers["Location"]).text
    assert {j for j in matching if status_of(app, j) == "queued"} == matching
    assert [status_of(app, j) for j in (other_error, other_actor, cancelled)] == [
        "failed", "failed", "cancelled"
    ]  # fmt: skip
    assert set(published_ids(stub_broker, "emails")) == matching


def test_cancel_all_matching_cancels_what_the_list_shows_after_confirmation(
    app, admin_client, stub_broker
):
    queued = {make_job(app, status="queued", args=["invoice"], minutes=i) for i in range(2)}
    failed = make_job(app, status="failed", args=["invoice"], minutes=3)
    other = make_job(app, status="queued", args=["newsletter"], minutes=4)
    assert "Cancel all 3 matching" in admin_client.get("/admin/jobs?q=invoice").text
    assert "Cancel 3 jobs?" in post_action(admin_client, "cancel_all", q="invoice").text
    post_action(admin_client, "cancel_all", q="invoice", confirmed="yes")
    with app.app_context():
        bulk = db.session.scalars(select(Job).where(Job.actor == "bulk_action")).one()
        assert bulk_actions.run(bulk.id) == {"matched": 3, "done": 3, "skipped": 0}
    assert {status_of(app, j) for j in (*queued, failed)} == {"cancelled"}
    assert status_of(app, other) == "queued"


def test_retry_all_is_not_offered_for_a_status_that_cannot_be_retried(app, admin_client):
    make_job(app, status="queued")
    assert "Retry all" not in admin_client.get("/admin/jobs?status=queued").text
    response = post_action(admin_client, "retry_all", status="queued")
    assert (
        "No job in this list can be retried" in admin_client.get(response.headers["Location"]).text
    )
