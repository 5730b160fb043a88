"""Leases: a worker that boots while the database is away claims nothing before
its lease exists, and a worker whose clock runs ahead does not take over a live
lease (leases are timed by the database's clock)."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest

from app.db import database_now, db
from app.models import Job, Worker
from tests.support.audit import audit
from tests.support.claims import claim
from tests.support.jobs import all_in, job, outcomes, send_emails
from tests.support.worker import wait_until

pytestmark = [pytest.mark.rabbitmq, pytest.mark.postgres]


def test_worker_started_while_the_database_is_down_claims_only_once_its_lease_exists(
    live_app, rabbit_broker, start_worker, smtp_server, proxies, headers
):
    # Given a worker that boots while its database is unreachable
    proxies.database.stop()
    worker = start_worker(**proxies.env)

    # When an email is queued (the web reaches the database) and the worker's comes back
    [sent] = send_emails(live_app, headers, 1)
    time.sleep(3)  # the message reaches the worker, which waits for its lease
    assert job(live_app, sent["job_id"]).status == "queued"
    proxies.database.start()

    # Then its lease was registered before its claim, and the email was sent once
    wait_until(lambda: all_in(live_app, [sent["job_id"]], "succeeded"), timeout=30)
    with live_app.app_context():
        [registered] = db.session.scalars(db.select(Worker.started_at)).all()
        claimed = db.session.scalar(db.select(Job.started_at).where(Job.id == sent["job_id"]))
        assert registered <= claimed
    assert "waits until it is" in worker.log()
    assert audit(live_app, smtp_server)["delivered"] == 1


def test_worker_whose_clock_runs_ahead_does_not_take_over_a_live_lease(
    live_app, rabbit_broker, start_worker, start_scheduler, smtp_server, proxies, headers
):
    # Given an email whose job another worker process holds under a lease that is
    # live for 60 s by the database's clock
    [sent] = send_emails(live_app, headers, 1)
    with live_app.app_context():
        now = database_now()
        db.session.add(
            Worker(
                id="elsewhere:1",
                queues=["emails"],
                started_at=now,
                heartbeat_at=now,
                expires_at=now + timedelta(seconds=60),
            )
        )
        db.session.commit()
        owner = claim(sent["job_id"], worker_id="elsewhere:1")

    # When a worker whose clock is 120 s ahead gets the job's message
    fast = start_worker("tests.support.clock_ahead", **proxies.env, CLOCK_AHEAD_S="120")
    wait_until(lambda: "not runnable now" in fast.log(), timeout=20, message="the message")

    # Then it left the job to its owner
    held = job(live_app, sent["job_id"])
    assert (held.status, held.claim, held.attempts) == ("running", owner.token, 1)
    assert smtp_server.messages == []

    # And once that owner's lease has expired it takes the job over and sends it once
    with live_app.app_context():
        expired = database_now() - timedelta(seconds=1)
        db.session.execute(
            db.update(Worker).where(Worker.id == "elsewhere:1").values(expires_at=expired)
        )
        db.session.commit()
    start_scheduler(**proxies.env)
    wait_until(lambda: all_in(live_app, [sent["job_id"]], "succeeded"), timeout=40)
    assert outcomes(live_app, sent["job_id"]) == [
        "interrupted",
        "succeeded",
    ]
    assert audit(live_app, smtp_server)["delivered"] == 1
