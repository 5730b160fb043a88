"""Retrying a failed export while its user has another unfinished one: 409 from
the API, a message on the admin page, and the CLI goes on with the other jobs."""

from __future__ import annotations

from app import bulk_actions
from app.db import db
from app.jobs import control
from app.models import Job
from tests.support.exports import failed_export_and_a_running_one


def test_api_retry_of_a_blocked_export_answers_409_and_changes_nothing(
    app, client, user, admin, stub_broker
):
    failed, _ = failed_export_and_a_running_one(app, client, user[1])

    response = client.post(f"/api/jobs/{failed}/retry", headers=admin[1])

    assert response.status_code == 409
    assert response.json["job_id"] == failed
    with app.app_context():
        job = db.session.get(Job, failed)
        assert (job.status, job.series) == ("failed", 0)


def test_the_cli_bulk_retry_skips_a_blocked_export_and_retries_the_rest(
    app, client, user, stub_broker
):
    failed_export, _ = failed_export_and_a_running_one(app, client, user[1])
    email = client.post(
        "/api/emails", json={"to": "a@example.com", "subject": "s", "body": "b"}, headers=user[1]
    ).json
    with app.app_context():
        db.session.get(Job, email["job_id"]).status = "failed"
        db.session.commit()

    result = app.test_cli_runner().invoke(args=["jobs", "retry", "--all-failed", "--no-wait"])

    assert result.exit_code == 0, result.output
    bulk_id = result.output.split()[2]
    with app.app_context():  # as the worker runs it (no worker here: the export stays running)
        assert bulk_actions.run(bulk_id) == {"matched": 2, "done": 1, "skipped": 1}
        assert db.session.get(Job, email["job_id"]).status == "queued"
        assert db.session.get(Job, failed_export).status == "failed"


def test_retry_many_goes_on_past_a_blocked_export(app, client, user, stub_broker):
    failed, running = failed_export_and_a_running_one(app, client, user[1])
    with app.app_context():
        assert control.retry_many([failed, running]) == (0, 2)
