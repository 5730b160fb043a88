"""An SMTP server that hangs, or refuses for longer than all retries."""

from __future__ import annotations

import pytest

from tests.support.audit import audit
from tests.support.jobs import all_in, job, outcomes, send_emails
from tests.support.worker import wait_until

pytestmark = [pytest.mark.rabbitmq, pytest.mark.postgres]


def test_smtp_server_that_never_answers_fails_the_attempt_within_mail_timeout(
    live_app, rabbit_broker, start_worker, smtp_server, proxies, headers
):
    # Given an SMTP server that accepts connections and never says a word
    proxies.smtp.holding = True
    start_worker(**proxies.env)  # MAIL_TIMEOUT=2
    [sent] = send_emails(live_app, headers, 1)

    # Then the attempt fails on the timeout and the job is retried
    def failed_once():
        return outcomes(live_app, sent["job_id"])[:1] == ["failed"]

    wait_until(failed_once, timeout=20, message="the first attempt to time out")
    first = job(live_app, sent["job_id"]).history[0]
    assert "timed out" in first.error_message

    # When the server answers again, the email goes out once
    proxies.smtp.holding = False
    wait_until(lambda: all_in(live_app, [sent["job_id"]], "succeeded"), timeout=30)
    assert audit(live_app, smtp_server)["delivered"] == 1


def test_smtp_down_through_all_retries_then_the_scheduled_resend_delivers_once(
    live_app, rabbit_broker, start_worker, start_scheduler, smtp_server, proxies, headers
):
    # Given an SMTP server that refuses every connection
    proxies.smtp.stop()
    env = {**proxies.env, "RESEND_INTERVAL_S": "2"}
    start_worker(**env)
    sent = send_emails(live_app, headers, 3)
    job_ids = [s["job_id"] for s in sent]

    # When every retry has failed, the job is failed (dead-lettered)
    wait_until(lambda: all_in(live_app, job_ids, "failed"), timeout=30, message="failed")
    failed = [job(live_app, job_id) for job_id in job_ids]
    assert all(found.attempts == found.max_retries + 1 for found in failed)
    assert rabbit_broker.get_queue_message_counts("emails")[2] == len(job_ids)  # dead letters

    # Then once the server is back the scheduled resend sends each email exactly once
    proxies.smtp.start()
    start_scheduler(**env)
    wait_until(lambda: all_in(live_app, job_ids, "succeeded"), timeout=40, message="resent")
    counts = audit(live_app, smtp_server)
    assert (counts["delivered"], counts["duplicates"]) == (3, 0)
