"""A tick is claimed once, whatever the number of schedulers (SQLite, StubBroker)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import update

from app.db import db, utcnow
from app.emails import SEND_EMAIL
from app.models import Job, ScheduleState
from app.scheduling import ticks
from app.scheduling.schedules import latest_tick


@pytest.fixture()
def rows(app, stub_broker):
    with app.app_context():
        ticks.ensure_rows()


def _jobs(app, actor):
    with app.app_context():
        return db.session.scalars(db.select(Job).where(Job.actor == actor)).all()


def test_a_tick_is_claimed_once(app, rows):
    with app.app_context():
        assert ticks.run_due("cleanup") is True
        assert ticks.run_due("cleanup") is False
    [job] = _jobs(app, "cleanup")
    assert job.queue == "maintenance"
    assert job.unique_key.startswith("cleanup@")


def test_two_leaders_cannot_enqueue_the_same_tick_twice(app, rows):
    with app.app_context():
        assert ticks.run_due("resend_failed_emails")
        # A second leader whose view of the schedule row is stale (the takeover race)
        db.session.execute(update(ScheduleState).values(last_tick_at=None))
        db.session.commit()
        assert ticks.run_due("resend_failed_emails") is False
    assert len(_jobs(app, "resend_failed_emails")) == 1


def test_catch_up_after_downtime_runs_once(app, rows):
    with app.app_context():
        db.session.execute(update(ScheduleState).values(last_tick_at=utcnow() - timedelta(days=2)))
        db.session.commit()
        assert ticks.run_due("cleanup")
        assert not ticks.run_due("cleanup")
    [job] = _jobs(app, "cleanup")
    with app.app_context():
        interval = app.config["CLEANUP_INTERVAL_S"]
        assert job.unique_key == f"cleanup@{latest_tick(interval, utcnow()).isoformat()}"


def test_relay_tick_publishes_waiting_jobs_and_records_the_outcome(app, rows, stub_broker):
    import dramatiq

    from app.jobs import outbox, state
    from app.jobs.broker import EXTENSION
    from app.rabbitmq import StubBroker

    class Down(StubBroker):
        def enqueue(self, message, *, delay=None):
            raise dramatiq.errors.ConnectionClosed(OSError("down"))

    with app.app_context():
        app.extensions[EXTENSION] = Down()
        job = state.new_job(SEND_EMAIL, args=["x"], max_retries=0)
        outbox.commit_and_publish(job)
        app.extensions[EXTENSION] = stub_broker
        assert ticks.run_due("relay")
        assert (
            db.session.get(ScheduleState, "relay").last_outcome
            == "ok: published 1, scheduled_queued 0, rescued 0"
        )
        assert db.session.get(Job, job.id).published_at is not None


def test_schedules_list_shows_each_schedule_and_warns_when_overdue(app, rows):
    with app.app_context():
        ticks.run_due("cleanup")
    output = app.test_cli_runner().invoke(args=["schedules", "list"]).output
    lines = {line.split()[0]: line for line in output.splitlines()[1:]}
    assert set(lines) == {"resend_failed_emails", "cleanup", "relay"}
    assert "job queued" in lines["cleanup"] and "WARNING" not in lines["cleanup"]
    assert "never ran" in lines["relay"] and "WARNING" in lines["relay"]
