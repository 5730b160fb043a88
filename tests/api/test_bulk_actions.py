"""POST /api/jobs/bulk: a bulk retry or cancel is a job of its own (actor
``bulk_action``), answered at once; it works in batches, its result is
``{matched, done, skipped}``, it resumes after an interruption without doing a
batch twice, and two at once change each job once. Every row and every
published message is checked afterwards."""

from __future__ import annotations

import threading
import time

import dramatiq
import pytest
from sqlalchemy import select

from app import create_app
from app.bulk_actions import _Advance, run
from app.db import db
from app.error_groups import group_of
from app.jobs import control
from app.models import AuditEntry, BulkAction, Job
from tests.support import factories
from tests.support.live_services import publish_to


def _failed(app, count: int, *, actor="send_email", message="451 try again later") -> list[str]:
    with app.app_context():
        jobs = [
            factories.job(
                actor,
                status="failed",
                args=[f"e{n}"],
                error_type="SMTPDataError",
                error_message=f"{message} for r{n}@example.com",
                error_group=group_of(actor, "SMTPDataError", f"{message} for r{n}@example.com"),
            )
            for n in range(count)
        ]
        db.session.commit()
        return [job.id for job in jobs]


def _statuses(app, job_ids) -> dict[str, tuple[str, int]]:
    with app.app_context():
        rows = db.session.execute(
            select(Job.id, Job.status, Job.series).where(Job.id.in_(job_ids))
        ).all()
        return {row.id: (row.status, row.series) for row in rows}


def _published(broker, queue="emails") -> list[str]:
    return [dramatiq.Message.decode(data).message_id for data in broker.queues[queue].queue]


def _start(client, headers, **body):
    response = client.post("/api/jobs/bulk", json=body, headers=headers)
    assert response.status_code == 202, response.json
    assert response.json["status"] == "queued"
    return response.json["job_id"]


def test_a_bulk_retry_is_a_job_that_retries_every_match_once(app, client, admin, stub_broker):
    failed = _failed(app, 2 * control.BATCH + 7)
    other = _failed(app, 3, actor="run_export")
    with app.app_context():
        running = factories.job(status="running").id
        db.session.commit()

    bulk_id = _start(client, admin[1], action="retry", actor="send_email")

    # The request only queued it: nothing is retried yet.
    assert {status for status, _ in _statuses(app, failed).values()} == {"failed"}
    assert _published(stub_broker, "maintenance") == [bulk_id]
    with app.app_context():
        assert run(bulk_id) == {"matched": len(failed), "done": len(failed), "skipped": 0}
    assert set(_statuses(app, failed).values()) == {("queued", 1)}
    assert set(_statuses(app, other).values()) == {("failed", 0)}
    assert _statuses(app, [running])[running] == ("running", 0)
    assert sorted(_published(stub_broker)) == sorted(failed)
    with app.app_context():
        entry = db.session.scalars(select(AuditEntry)).one()
        assert (entry.action, entry.user_email, entry.target) == (
            "bulk_retry",
            "admin@example.com",
            {"actor": "send_email"},
        )
        assert entry.detail["job_id"] == bulk_id
        assert entry.detail["done"] == len(failed)


def test_a_bulk_action_answers_422_for_what_it_cannot_do_and_queues_nothing(
    app, client, admin, stub_broker
):
    for body, field in [
        ({"action": "delete"}, "action"),
        ({"action": "retry", "status": "succeeded"}, "status"),
        ({"action": "cancel", "status": "running"}, "status"),
        ({"action": "retry", "group": "not-a-group"}, "group"),
        ({"action": "retry", "status": "nonsense"}, "status"),
    ]:
        response = client.post("/api/jobs/bulk", json=body, headers=admin[1])
        assert response.status_code == 422, body
        assert field in response.json["fields"], response.json
    with app.app_context():
        assert db.session.scalars(select(Job)).all() == []
        assert db.session.scalars(select(AuditEntry)).all() == []


def test_a_bulk_retry_of_an_error_group_touches_only_that_group(app, client, admin, stub_broker):
    slow = _failed(app, 5)
    refused = _failed(app, 4, message="550 no such user")
    groups = client.get("/api/errors", headers=admin[1]).json["items"]
    assert [(g["count"], g["message"]) for g in groups] == [
        (5, "451 try again later for <address>"),
        (4, "550 no such user for <address>"),
    ]

    bulk_id = _start(client, admin[1], action="retry", group=groups[1]["group"])
    with app.app_context():
        assert run(bulk_id) == {"matched": 4, "done": 4, "skipped": 0}
    assert set(_statuses(app, refused).values()) == {("queued", 1)}
    assert set(_statuses(app, slow).values()) == {("failed", 0)}


def test_a_bulk_cancel_cancels_what_matches_the_search(app, client, admin, stub_broker):
    with app.app_context():
        queued = [factories.job(status="queued", args=["invoice"]).id for _ in range(3)]
        others = [factories.job(status="queued", args=["newsletter"]).id for _ in range(2)]
        db.session.commit()
    bulk_id = _start(client, admin[1], action="cancel", q="invoice")
    with app.app_context():
        assert run(bulk_id) == {"matched": 3, "done": 3, "skipped": 0}
    assert {status for status, _ in _statuses(app, queued).values()} == {"cancelled"}
    assert {status for status, _ in _statuses(app, others).values()} == {"queued"}


class _Killed(BaseException):
    """The worker dies in the middle of a batch: nothing after it runs."""


def test_an_interrupted_bulk_action_resumes_after_its_last_committed_batch(
    app, client, admin, stub_broker, monkeypatch
):
    failed = _failed(app, 3 * control.BATCH)
    bulk_id = _start(client, admin[1], action="retry")
    calls = {"n": 0}
    advance = _Advance.__call__

    def dies_in_the_third_batch(self, changed):
        calls["n"] += 1
        advance(self, changed)
        if calls["n"] == 3:
            raise _Killed()

    monkeypatch.setattr(_Advance, "__call__", dies_in_the_third_batch)
    with app.app_context(), pytest.raises(_Killed):
        run(bulk_id)
    with app.app_context():
        db.session.rollback()
        bulk = db.session.get(BulkAction, bulk_id)
        assert (bulk.done, bulk.skipped) == (2 * control.BATCH, 0)
    assert len(_published(stub_broker)) == 2 * control.BATCH

    monkeypatch.setattr(_Advance, "__call__", advance)
    with app.app_context():
        assert run(bulk_id) == {"matched": len(failed), "done": len(failed), "skipped": 0}
    assert set(_statuses(app, failed).values()) == {("queued", 1)}
    published = _published(stub_broker)
    assert sorted(published) == sorted(failed)  # each once


def test_the_bulk_action_runs_on_a_worker_and_reports_its_result(
    app, client, admin, stub_broker, stub_worker
):
    failed = _failed(app, 30)
    with app.app_context():
        for job in db.session.scalars(select(Job).where(Job.id.in_(failed))):
            job.status = "failed"
        db.session.commit()
    bulk_id = _start(client, admin[1], action="cancel", status="failed")

    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        job = client.get(f"/api/jobs/{bulk_id}", headers=admin[1]).json
        if job["status"] in ("succeeded", "failed"):
            break
        time.sleep(0.05)
    assert (job["status"], job["progress"], job["result"]) == (
        "succeeded",
        100,
        {"matched": 30, "done": 30, "skipped": 0},
    )
    assert {status for status, _ in _statuses(app, failed).values()} == {"cancelled"}
    audit = client.get("/api/audit", headers=admin[1]).json["items"]
    assert [entry["action"] for entry in audit] == ["bulk_cancel"]
    assert audit[0]["detail"]["done"] == 30


@pytest.mark.postgres
def test_two_bulk_retries_over_the_same_jobs_requeue_each_once(postgres):
    app = create_app({"TESTING": True, "DATABASE_URL": postgres.url()})
    try:
        broker = publish_to(app, BROKER_URL="stub://")
        for actor in dramatiq.get_broker().actors.values():
            broker.declare_actor(actor)
        failed = _failed(app, 2 * control.BATCH + 100)
        with app.app_context():
            from app import bulk_actions

            ids = [
                bulk_actions.start("retry", bulk_actions.Filters(), user_id=None).id
                for _ in range(2)
            ]
        results = {}
        barrier = threading.Barrier(2)

        def run_one(bulk_id):
            with app.app_context():
                barrier.wait()
                results[bulk_id] = run(bulk_id)

        threads = [threading.Thread(target=run_one, args=(bulk_id,)) for bulk_id in ids]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        assert sum(result["done"] for result in results.values()) == len(failed)
        assert all(result["matched"] == len(failed) for result in results.values())
        assert set(_statuses(app, failed).values()) == {("queued", 1)}
        assert sorted(_published(broker)) == sorted(failed)
    finally:
        with app.app_context():
            db.engine.dispose()
