"""RabbitMQ takes a message back from a live consumer: what ``consumer_timeout``
does to a job that runs longer (30 minutes by default; exports may run 2 hours).

The broker closes the consumer's channel and requeues the message while the
worker is still running its job; the copy must not start the job again. The
RabbitMQ here (3.10) did not enforce ``consumer_timeout`` within 100 s in a probe,
so the test takes the message back the same way, from the broker's side:
``rabbitmqctl close_connection`` on the worker's connections mid-job."""

from __future__ import annotations

import subprocess
import time

import pytest

from app.db import db
from app.seed import seed_posts
from tests.support.audit import audit
from tests.support.jobs import all_in, every_job_is, outcomes
from tests.support.worker import wait_until

pytestmark = [pytest.mark.rabbitmq, pytest.mark.postgres]


def _close_connections(vhost: str) -> int:
    listed = subprocess.run(
        ["rabbitmqctl", "list_connections", "-p", vhost, "-q", "pid"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.split()
    for pid in listed:
        subprocess.run(
            ["rabbitmqctl", "close_connection", pid, "consumer timeout (test)"],
            capture_output=True,
            check=False,
            timeout=60,
        )
    return len(listed)


def test_export_whose_message_the_broker_takes_back_mid_job_runs_once(
    live_app, rabbit_broker, vhost, start_worker, smtp_server, proxies, headers
):
    with live_app.app_context():
        seed_posts(db.session.scalar(db.text("SELECT id FROM users")), 2000)
    # Given a worker writing an export slowly
    start_worker("tests.support.slow_export", **proxies.env)
    created = (
        live_app.test_client()
        .post("/api/exports", json={"kind": "posts", "format": "csv"}, headers=headers)
        .json
    )
    wait_until(lambda: all_in(live_app, [created["job_id"]], "running"), message="running")

    # When the broker closes the worker's connections and requeues the message mid-job
    assert _close_connections(vhost.name) >= 1

    # Then the export runs to its end once: one attempt, one file, one email
    job_ids = [created["job_id"]]
    wait_until(lambda: all_in(live_app, job_ids, "succeeded"), timeout=90, message="export")
    wait_until(lambda: len(smtp_server.messages) == 1, message="the export's email")
    wait_until(lambda: every_job_is(live_app, "succeeded"), message="the email's job")
    time.sleep(2)  # room for a redelivered copy to run, were it going to
    assert outcomes(live_app, created["job_id"]) == ["succeeded"]
    counts = audit(live_app, smtp_server)
    assert (counts["exports"], counts["delivered"]) == (1, 1)
