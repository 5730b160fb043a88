"""A state write that cannot finish (a row lock held by another session) or a
writer that meets an error of its own must not stall the process: its other
jobs go on, and every write ends with an outcome for its caller."""

from __future__ import annotations

import pytest

from tests.support.audit import audit
from tests.support.jobs import all_in, job, outcomes, send_emails
from tests.support.worker import wait_until

pytestmark = [pytest.mark.rabbitmq, pytest.mark.postgres]


def test_a_row_lock_held_on_one_job_does_not_hold_up_the_others(
    live_app,
    rabbit_broker,
    start_worker,
    start_scheduler,
    smtp_server,
    postgres,
    proxies,
    headers,
):
    # Given a worker sending an email (the server takes 1 s), and a scheduler
    smtp_server.recorder.delay_s = 1
    worker = start_worker(**{**proxies.env, "MAIL_TIMEOUT": "30"})
    start_scheduler(**proxies.env)
    [first] = send_emails(live_app, headers, 1)
    wait_until(lambda: all_in(live_app, [first["job_id"]], "running"), message="running")

    # When another session locks that job's row (an operator's SELECT ... FOR
    # UPDATE) while its success is written, and six more emails arrive
    locker = postgres.connect()
    try:
        locker.execute("SELECT id FROM jobs WHERE id = %s FOR UPDATE", (first["job_id"],))
        others = send_emails(live_app, headers, 6)
        other_ids = [s["job_id"] for s in others]

        # Then the six are sent meanwhile, and the locked job stays its worker's
        wait_until(
            lambda: all_in(live_app, other_ids, "succeeded"), timeout=40, message="the other emails"
        )
        locked = job(live_app, first["job_id"])
        assert (locked.status, locked.attempts) == ("running", 1)
    finally:
        locker.rollback()
        locker.close()

    # And once the lock is gone its success is written: one attempt, sent once
    wait_until(lambda: all_in(live_app, [first["job_id"]], "succeeded"), timeout=30)
    assert outcomes(live_app, first["job_id"]) == ["succeeded"]
    assert "stuck" in worker.log()
    counts = audit(live_app, smtp_server)
    assert (counts["emails"], counts["delivered"]) == (7, 7)


def test_the_writer_meeting_an_error_of_its_own_fails_no_job_and_says_so(
    live_app, rabbit_broker, start_worker, smtp_server, proxies, headers
):
    # Given a worker whose job-state writer fails in its first batch with a success
    worker = start_worker("tests.support.writer_fault", **proxies.env)

    # When emails are sent through it
    sent = send_emails(live_app, headers, 5)

    # Then the failure is logged, the writes run again, and every email is sent once
    job_ids = [s["job_id"] for s in sent]
    wait_until(lambda: all_in(live_app, job_ids, "succeeded"), timeout=30, message="all sent")
    assert "job-state writer failed" in worker.log()
    for job_id in job_ids:
        assert outcomes(live_app, job_id) == ["succeeded"]
    counts = audit(live_app, smtp_server)
    assert (counts["emails"], counts["delivered"]) == (5, 5)
