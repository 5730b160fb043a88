"""The database refuses writes for a while (a primary demoted during a failover),
and data that cannot be stored as it is. Neither may leave a job without an
outcome: failover errors are waited out like a lost connection, and what the
worker writes about an attempt is made storable first."""

from __future__ import annotations

import time

import pytest

from tests.support.audit import audit
from tests.support.jobs import all_in, email_attempts, job, outcomes, send_emails
from tests.support.worker import wait_until

pytestmark = [pytest.mark.rabbitmq, pytest.mark.postgres]


def test_database_read_only_for_10_s_while_attempts_finish_leaves_no_job_running(
    live_app, rabbit_broker, start_worker, smtp_server, postgres, proxies, headers
):
    # Given a worker in the middle of sending emails (the SMTP server takes 2 s each)
    smtp_server.recorder.delay_s = 2
    start_worker(**{**proxies.env, "JOB_LEASE_S": "30", "MAIL_TIMEOUT": "30"})
    sent = send_emails(live_app, headers, 6)
    wait_until(lambda: email_attempts(live_app, sent[0]["email_id"]) == 1, message="sending")

    # When the database turns read-only for 10 s (its sessions ended) as those sends finish
    postgres.set_read_only(True)
    try:
        time.sleep(10)
    finally:
        postgres.set_read_only(False)

    # Then every job ends succeeded, and every email was delivered once (an attempt
    # whose check before DATA met the ended sessions failed and was retried)
    job_ids = [s["job_id"] for s in sent]
    wait_until(lambda: all_in(live_app, job_ids, "succeeded"), timeout=60, message="all sent")
    for job_id in job_ids:
        history = outcomes(live_app, job_id)
        assert history[-1] == "succeeded" and history.count("succeeded") == 1, history
    counts = audit(live_app, smtp_server)
    assert (counts["emails"], counts["delivered"]) == (6, 6)


def test_smtp_reply_with_a_nul_byte_is_stored_without_it_and_the_email_retried(
    live_app, rabbit_broker, start_worker, smtp_server, proxies, headers
):
    # Given an SMTP server whose first answer to DATA is a temporary refusal holding a NUL
    smtp_server.recorder.reply = "451 try\x00 again later"
    start_worker(**proxies.env)
    [sent] = send_emails(live_app, headers, 1)

    # When that attempt fails, and the server accepts the next one
    def first_outcome():
        history = job(live_app, sent["job_id"]).history
        return history and history[0].outcome

    wait_until(lambda: first_outcome() == "failed", message="the first attempt recorded")
    smtp_server.recorder.reply = None

    # Then the failure was recorded (without the NUL), retried, and the email sent once
    wait_until(lambda: all_in(live_app, [sent["job_id"]], "succeeded"), timeout=30)
    history = job(live_app, sent["job_id"]).history
    first, last = history[0], history[-1]
    assert (first.outcome, first.error_type) == ("failed", "SMTPTemporaryError")
    assert "\x00" not in first.error_message and "try again" in first.error_message
    assert last.outcome == "succeeded"
    assert audit(live_app, smtp_server)["delivered"] == 1
