"""Retries pile up while every worker is down: the relay must not copy them into
the broker again and again, and once workers are back each runs once."""

from __future__ import annotations

import time
from collections import Counter

import pytest

from tests.support.audit import audit
from tests.support.jobs import all_in, send_emails
from tests.support.worker import wait_until

pytestmark = [pytest.mark.rabbitmq, pytest.mark.postgres, pytest.mark.slow]

RELAY_INTERVALS = 25


def test_retrying_jobs_while_every_worker_is_down_are_not_multiplied_and_run_once(
    live_app, rabbit_broker, vhost, start_worker, start_scheduler, smtp_server, proxies, headers
):
    # Given emails failing for now (SMTP says 451), retried every second or two
    smtp_server.recorder.reply = "451 4.3.0 try again later"
    env = {**proxies.env, "RETRY_MIN_BACKOFF_MS": "1000", "RETRY_MAX_BACKOFF_MS": "2000"}
    worker = start_worker(**env)
    sent = send_emails(live_app, headers, 10)
    job_ids = [s["job_id"] for s in sent]
    wait_until(lambda: all_in(live_app, job_ids, "retrying"), message="all retrying")

    # When every worker is killed and the relay runs for 25 intervals
    worker.kill()
    start_scheduler(**env)
    time.sleep(RELAY_INTERVALS)

    # Then the broker holds at most 2 messages per job, and at least one
    copies = Counter(vhost.message_ids("emails", "emails.DQ"))
    assert set(copies) <= set(job_ids)
    assert all(1 <= copies[job_id] <= 2 for job_id in job_ids), copies

    # When the SMTP server accepts again and a worker is back
    smtp_server.recorder.reply = None
    start_worker(**env)

    # Then each email is sent exactly once
    wait_until(lambda: all_in(live_app, job_ids, "succeeded"), timeout=60, message="all sent")
    time.sleep(2)  # room for a leftover copy to run, were it going to
    counts = audit(live_app, smtp_server)
    assert (counts["delivered"], counts["duplicates"]) == (10, 0)
