"""Lost jobs are published again, once per window, and run once (StubBroker)."""

from __future__ import annotations

from datetime import timedelta

import dramatiq
import pytest

from app.db import db, utcnow
from app.email_queue import new_email
from app.jobs import kinds, outbox
from app.jobs.broker import EXTENSION
from app.maintenance.rescue import BACKOFF_FACTOR, GRACE_INTERVALS, rescue_lost_jobs
from app.models import Job, Worker
from tests.support.down_broker import DownBroker

# RELAY_INTERVAL_S is 10 by default.
GRACE = timedelta(seconds=GRACE_INTERVALS * 10)


def _email_job(app, user_id, *, status, age, worker_id=None) -> str:
    with app.app_context():
        _, job = new_email(user_id=user_id, to="r@example.com", subject="s", body="b")
        job.status = status
        job.published_at = utcnow() - age
        job.worker_id = worker_id
        if status == "retrying":
            job.next_retry_at = utcnow() - age
        db.session.commit()
        return job.id


def _worker(app, worker_id="w", *, age, live=True, claimed=None) -> None:
    """A worker row serving every queue, started ``age`` ago."""
    with app.app_context():
        now = utcnow()
        db.session.merge(
            Worker(
                id=worker_id,
                queues=list(kinds.registry().queues),
                started_at=now - age,
                heartbeat_at=now,
                expires_at=now + (timedelta(minutes=1) if live else -timedelta(seconds=1)),
                claimed={"emails": claimed.isoformat()} if claimed else {},
            )
        )
        db.session.commit()


def _shift(app, job_id, by: timedelta) -> None:
    """Move the job's last publish back in time, as if ``by`` had passed."""
    with app.app_context():
        job = db.session.get(Job, job_id)
        job.published_at -= by
        db.session.commit()


def rescued() -> int:
    return rescue_lost_jobs()["rescued"]


@pytest.fixture()
def seasoned_worker(app):
    _worker(app, age=GRACE * 2)


def test_nothing_is_rescued_while_no_worker_serves_the_queue(app, user, stub_broker):
    # Given an overdue retry and no live worker (all were killed)
    _email_job(app, user[0], status="retrying", age=GRACE * 10)
    _worker(app, age=GRACE * 2, live=False)
    with app.app_context():
        # Then copies would only pile up in the broker: none is made
        assert rescued() == 0
    # A worker that has just started gets a grace window to drain the delay queue first
    _worker(app, "new", age=timedelta(0))
    with app.app_context():
        assert rescued() == 0


def test_overdue_retrying_job_is_rescued_and_runs_once(
    app, user, stub_broker, stub_worker, smtp_server, seasoned_worker
):
    with app.app_context():
        lost = _email_job(app, user[0], status="retrying", age=GRACE * 2)
        fresh = _email_job(app, user[0], status="retrying", age=timedelta(0))
        assert rescued() == 1
        # A second copy, as if the lost message turned up after all
        outbox.publish(outbox.message_for(db.session.get(Job, lost)))
    stub_broker.join("emails")
    stub_worker.join()
    with app.app_context():
        job = db.session.get(Job, lost)
        assert (job.status, job.attempts) == ("succeeded", 1)
        assert db.session.get(Job, fresh).status == "retrying"
    assert len(smtp_server.messages) == 1


def test_each_further_rescue_of_a_job_waits_four_times_longer(
    app, user, stub_broker, seasoned_worker
):
    # Given a lost retry, rescued once
    lost = _email_job(app, user[0], status="retrying", age=GRACE * 2)
    with app.app_context():
        assert rescued() == 1
    stub_broker.flush_all()
    # When less than four windows pass, it is not copied again
    _shift(app, lost, GRACE * (BACKOFF_FACTOR - 1))
    with app.app_context():
        assert rescued() == 0
    # and after four windows it is, once, carrying its retry count
    _shift(app, lost, GRACE * 1.1)
    with app.app_context():
        assert rescued() == 1
        job = db.session.get(Job, lost)
        assert job.rescues == 2
        [encoded] = stub_broker.queues["emails"].queue
        assert dramatiq.Message.decode(encoded).options["retries"] == job.retries


def test_stale_queued_job_waiting_in_line_is_not_copied(app, user, stub_broker, seasoned_worker):
    # Given a queued job whose message is still waiting in its queue
    lost = _email_job(app, user[0], status="queued", age=GRACE * 2)
    with app.app_context():
        stub_broker.declare_queue("emails")
        stub_broker.enqueue(outbox.message_for(db.session.get(Job, lost)))
        assert rescued() == 0
        # When the queue turns out empty (the message was purged)
        stub_broker.flush("emails")
        # Then it is rescued once, and not again in the same window
        assert rescued() == 1
        assert rescued() == 0


def test_queued_job_overtaken_by_later_claims_is_rescued_though_the_queue_is_busy(
    app, user, stub_broker
):
    # Given a queued job published long ago, and workers that have since claimed
    # jobs published well after it, from a queue that still holds other messages
    lost = _email_job(app, user[0], status="queued", age=GRACE * 3)
    _worker(app, age=GRACE * 4, claimed=utcnow())
    other = _email_job(app, user[0], status="queued", age=timedelta(0))
    with app.app_context():
        stub_broker.declare_queue("emails")
        stub_broker.enqueue(outbox.message_for(db.session.get(Job, other)))
        # Then only the overtaken job is rescued
        assert rescued() == 1
        assert db.session.get(Job, lost).rescues == 1
        assert db.session.get(Job, other).rescues == 0


def test_running_job_whose_worker_died_is_rescued(app, user, stub_broker, seasoned_worker):
    # Given two running jobs: one whose worker's lease expired, one under a live lease
    _worker(app, "dead", age=GRACE * 2, live=False)
    orphan = _email_job(app, user[0], status="running", age=GRACE, worker_id="dead")
    owned = _email_job(app, user[0], status="running", age=GRACE, worker_id="w")
    with app.app_context():
        # Then only the orphan is published again
        assert rescued() == 1
        assert db.session.get(Job, orphan).rescues == 1
        assert db.session.get(Job, owned).rescues == 0


def test_a_rescue_whose_publish_fails_is_undone_and_tried_again(
    app, user, stub_broker, seasoned_worker
):
    # Given a lost retry, and a broker that refuses the rescue's publish
    lost = _email_job(app, user[0], status="retrying", age=GRACE * 2)
    with app.app_context():
        before = db.session.get(Job, lost).published_at
        app.extensions[EXTENSION] = DownBroker()
        try:
            assert rescued() == 0
        finally:
            app.extensions[EXTENSION] = stub_broker
        # Then its row is as it was, and the next rescue publishes it
        job = db.session.get(Job, lost, populate_existing=True)
        assert (job.published_at, job.rescues) == (before, 0)
        assert rescued() == 1
