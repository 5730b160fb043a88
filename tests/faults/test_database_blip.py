"""The database goes away while attempts finish. Dramatiq would ack a message
whose outcome a middleware failed to write; the worker instead waits for the
database and writes every outcome before the message is acked."""

from __future__ import annotations

import pytest

from tests.support.audit import audit
from tests.support.jobs import all_in, email_attempts, send_emails
from tests.support.worker import wait_until

pytestmark = [pytest.mark.rabbitmq, pytest.mark.postgres]


def test_database_cut_for_6_s_while_attempts_finish_leaves_no_job_running(
    live_app, rabbit_broker, start_worker, smtp_server, proxies, headers
):
    # Given a worker in the middle of sending emails (the SMTP server takes 2 s each)
    smtp_server.recorder.delay_s = 2
    start_worker(**{**proxies.env, "JOB_LEASE_S": "30", "MAIL_TIMEOUT": "30"})
    sent = send_emails(live_app, headers, 6)
    wait_until(lambda: email_attempts(live_app, sent[0]["email_id"]) == 1, message="sending")

    # When the worker's database is unreachable for 6 s while those sends finish
    proxies.database.cut(6)

    # Then every job ends succeeded, none stays running, every email was delivered once
    job_ids = [s["job_id"] for s in sent]
    wait_until(lambda: all_in(live_app, job_ids, "succeeded"), timeout=60, message="all sent")
    counts = audit(live_app, smtp_server)
    assert (counts["emails"], counts["delivered"]) == (6, 6)
