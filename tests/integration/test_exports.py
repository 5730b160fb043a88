"""Exports against the real PostgreSQL, RabbitMQ and worker processes."""

from __future__ import annotations

import csv
import threading
from pathlib import Path

import pytest

from app import auth
from app.db import db
from app.models import Export, Job
from app.seed import seed_posts
from tests.support.worker import wait_until

pytestmark = [pytest.mark.rabbitmq, pytest.mark.postgres]
POSTS = 2000


@pytest.fixture()
def owner(live_app):
    with live_app.app_context():
        user = auth.create_user("gina@example.com", "pw")
        seed_posts(user.id, POSTS)
        return {"Authorization": f"Bearer {auth.issue_token(user)}"}


def test_two_simultaneous_requests_get_one_export_and_one_409(live_app, owner, stub_broker):
    barrier = threading.Barrier(2)
    answers = []

    def request(fmt):
        client = live_app.test_client()
        barrier.wait()
        response = client.post("/api/exports", json={"kind": "posts", "format": fmt}, headers=owner)
        answers.append((response.status_code, response.json))

    threads = [threading.Thread(target=request, args=(fmt,)) for fmt in ("csv", "json")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(status for status, _ in answers) == [202, 409]
    accepted = next(body for status, body in answers if status == 202)
    refused = next(body for status, body in answers if status == 409)
    assert refused["job_id"] == accepted["job_id"]
    with live_app.app_context():
        assert db.session.query(Export).count() == 1


def test_worker_killed_mid_export_leaves_no_partial_file_and_the_retry_completes(
    live_app, owner, rabbit_broker, start_worker
):
    export_dir = Path(live_app.config["EXPORT_DIR"])
    # Given a worker writing an export slowly
    slow = start_worker("tests.support.slow_export")
    created = (
        live_app.test_client()
        .post("/api/exports", json={"kind": "posts", "format": "csv"}, headers=owner)
        .json
    )
    partials = lambda: list((export_dir / ".partial").glob("*"))  # noqa: E731
    wait_until(partials, message="the export to be half written")

    # When the worker is SIGKILLed mid-export
    slow.kill()

    # Then no file can be downloaded: the partial file is not the export's file
    assert not list(export_dir.glob("*.csv"))
    download = live_app.test_client().get(
        f"/api/exports/{created['export_id']}/download", headers=owner
    )
    assert download.status_code == 409

    # When a worker comes back, the redelivered attempt starts clean and completes
    start_worker()

    def job_succeeded():
        with live_app.app_context():
            return db.session.get(Job, created["job_id"]).status == "succeeded"

    wait_until(job_succeeded, timeout=60, message="the export job to succeed")
    with live_app.app_context():
        export = db.session.get(Export, created["export_id"])
        job = db.session.get(Job, created["job_id"])
        assert export.rows == POSTS
        assert [a.outcome for a in job.history] == ["interrupted", "succeeded"]
    assert partials() == []
    with open(export_dir / f"{created['export_id']}.csv", encoding="utf-8", newline="") as file:
        header, *rows = list(csv.reader(file))
    assert [row[1].split()[0] for row in rows] == [f"#{n}" for n in range(1, POSTS + 1)]
