"""Cancelling a running export, with a real worker, RabbitMQ, PostgreSQL and SMTP
server: the API answers 202 with the cancel requested, the export stops at its
next batch within five seconds, leaves no file, sends no email and ends
``cancelled`` (job and export); a cancel that arrives while the finished file
is being renamed ends one way or the other, never both, never neither; a
running email cannot be cancelled (409); the user cancels their own export."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from sqlalchemy import select

from app import auth
from app.db import db
from app.models import AuditEntry, Export, Job, User
from app.seed import seed_posts
from tests.admin.conftest import csrf_token, signed_in
from tests.support import factories
from tests.support.jobs import outcomes
from tests.support.worker import wait_until

pytestmark = [pytest.mark.rabbitmq, pytest.mark.postgres]


@pytest.fixture()
def admin_headers(live_app):
    with live_app.app_context():
        admin = auth.create_user("ops@example.com", "pw", admin=True)
        return {"Authorization": f"Bearer {auth.issue_token(admin)}"}


def _start_export(app, headers, rows: int = 3000) -> dict:
    with app.app_context():
        user_id = db.session.scalar(select(User.id).where(User.email == "faults@example.com"))
        seed_posts(user_id, rows)
    response = app.test_client().post(
        "/api/exports", json={"kind": "posts", "format": "csv"}, headers=headers
    )
    assert response.status_code == 202, response.json
    return response.json


def _states(app, created) -> tuple[str, str, int]:
    with app.app_context():
        job = db.session.get(Job, created["job_id"])
        export = db.session.get(Export, created["export_id"])
        return job.status, export.status, job.progress


def _files(app) -> list[Path]:
    return [p for p in Path(app.config["EXPORT_DIR"]).rglob("*") if p.is_file()]


def test_a_running_export_cancelled_stops_within_5_s_with_no_file_and_no_email(
    live_app, rabbit_broker, start_worker, smtp_server, proxies, headers, admin_headers
):
    start_worker("tests.support.slow_export", **proxies.env)
    created = _start_export(live_app, headers)
    wait_until(lambda: _states(live_app, created)[2] > 0, message="the export under way")

    response = live_app.test_client().post(
        f"/api/jobs/{created['job_id']}/cancel", headers=admin_headers
    )
    asked = time.monotonic()
    assert response.status_code == 202, response.json
    assert response.json == {
        "job_id": created["job_id"],
        "status": "running",
        "cancel_requested": True,
    }
    wait_until(lambda: _states(live_app, created)[0] == "cancelled", timeout=5, message="stop")
    assert time.monotonic() - asked < 5
    assert _states(live_app, created)[:2] == ("cancelled", "cancelled")
    assert outcomes(live_app, created["job_id"]) == ["cancelled"]
    time.sleep(1)  # room for a file or an email, were one coming
    assert _files(live_app) == []
    assert smtp_server.messages == []
    with live_app.app_context():
        entry = db.session.scalars(select(AuditEntry)).one()
        assert (entry.action, entry.target) == ("cancel", {"job_ids": [created["job_id"]]})
    # A cancelled export can be retried: it runs again from the start
    retried = live_app.test_client().post(
        f"/api/jobs/{created['job_id']}/retry", headers=admin_headers
    )
    assert retried.status_code == 202
    wait_until(lambda: _states(live_app, created)[:2] == ("succeeded", "succeeded"), timeout=60)
    wait_until(lambda: len(smtp_server.messages) == 1, message="the export's email")


def test_a_cancel_while_the_finished_file_is_renamed_ends_one_way_only(
    live_app, rabbit_broker, start_worker, smtp_server, proxies, headers, admin_headers
):
    start_worker("tests.support.slow_rename", **proxies.env)
    created = _start_export(live_app, headers, rows=200)
    # The rename waits 3 s once the file is whole and the claim checked
    wait_until(lambda: _states(live_app, created)[1] == "succeeded", timeout=30, message="done")
    response = live_app.test_client().post(
        f"/api/jobs/{created['job_id']}/cancel", headers=admin_headers
    )
    assert response.status_code in (200, 202, 409), response.json
    wait_until(lambda: _states(live_app, created)[0] in ("succeeded", "cancelled"), timeout=20)
    time.sleep(2)  # room for the email, were one coming
    job_status, export_status, _ = _states(live_app, created)
    files = _files(live_app)
    if job_status == "succeeded":
        assert export_status == "succeeded" and len(files) == 1
        wait_until(lambda: len(smtp_server.messages) == 1, message="its email")
    else:
        assert export_status == "cancelled" and files == [] and smtp_server.messages == []


def test_a_cancel_before_the_rename_leaves_no_file_and_sends_nothing(
    live_app, rabbit_broker, start_worker, smtp_server, proxies, headers, admin_headers
):
    start_worker("tests.support.slow_rename", **proxies.env)
    created = _start_export(live_app, headers, rows=200)
    # Cancelled while the export is running but not yet renaming (progress written)
    wait_until(lambda: _states(live_app, created)[0] == "running", message="running")
    response = live_app.test_client().post(
        f"/api/jobs/{created['job_id']}/cancel", headers=admin_headers
    )
    assert response.status_code == 202, response.json
    wait_until(lambda: _states(live_app, created)[0] != "running", timeout=10, message="ended")
    job_status, export_status, _ = _states(live_app, created)
    time.sleep(1)
    if job_status == "cancelled":
        assert export_status == "cancelled" and _files(live_app) == []
        assert smtp_server.messages == []
    else:  # the claim was checked before the cancel: it finished, with its email
        assert (job_status, export_status) == ("succeeded", "succeeded")
        wait_until(lambda: len(smtp_server.messages) == 1, message="its email")


def test_a_running_email_cannot_be_cancelled(live_app, admin_headers):
    with live_app.app_context():
        job_id = factories.job("send_email", status="running").id
        db.session.commit()
    response = live_app.test_client().post(f"/api/jobs/{job_id}/cancel", headers=admin_headers)
    assert response.status_code == 409, response.json
    assert "this one is running" in response.json["error"]


def test_the_user_cancels_their_own_queued_export_from_the_page(live_app, headers):
    with live_app.app_context():
        auth.create_user("cat@example.com", "correct horse")
        auth.create_user("dan@example.com", "correct horse")
        owner = db.session.scalar(select(User).where(User.email == "cat@example.com"))
        export = Export(user_id=owner.id, kind="posts", format="csv")
        job = factories.job("run_export", status="queued", user_id=owner.id)
        db.session.flush()
        export.job_id, job.args = job.id, [export.id]
        db.session.add(export)
        db.session.commit()
        export_id, job_id = export.id, job.id
    stranger = signed_in(live_app, "dan@example.com")
    token = csrf_token(stranger, "/")
    assert (
        stranger.post(f"/exports/{export_id}/cancel", data={"csrf_token": token}).status_code == 404
    )
    client = signed_in(live_app, "cat@example.com")
    page = client.get("/").text
    assert f'action="/exports/{export_id}/cancel"' in page
    response = client.post(
        f"/exports/{export_id}/cancel", data={"csrf_token": csrf_token(client, "/")}
    )
    assert response.status_code == 303
    assert "Export cancelled." in client.get("/").text
    with live_app.app_context():
        assert db.session.get(Export, export_id).status == "cancelled"
        assert db.session.get(Job, job_id).status == "cancelled"
