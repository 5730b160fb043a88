"""The admin page's Retry of an export blocked by another unfinished one."""

from __future__ import annotations

from app.db import db
from app.models import Job
from tests.admin.conftest import csrf_token
from tests.support.exports import failed_export_and_a_running_one


def test_admin_retry_of_a_blocked_export_says_why_and_changes_nothing(
    app, client, user, admin_client, stub_broker
):
    failed, _ = failed_export_and_a_running_one(app, client, user[1])

    response = admin_client.post(
        f"/admin/jobs/{failed}/retry", data={"csrf_token": csrf_token(admin_client)}
    )

    assert response.status_code == 303
    page = admin_client.get(response.headers["Location"]).text
    assert "blocked by another unfinished export" in page
    with app.app_context():
        assert db.session.get(Job, failed).status == "failed"
