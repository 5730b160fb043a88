"""The worker's RabbitMQ connection drops while a job runs: RabbitMQ requeues the
unacked message and flags it redelivered, though the worker is alive and still
running the job. The job's lease, not the flag, decides: the copy is skipped."""

from __future__ import annotations

import time

import pytest

from tests.support.audit import audit
from tests.support.jobs import all_in, email_attempts, job, send_emails
from tests.support.worker import wait_until

pytestmark = [pytest.mark.rabbitmq, pytest.mark.postgres]


def test_broker_connection_cut_while_a_slow_email_is_sent_sends_it_once(
    live_app, rabbit_broker, start_worker, smtp_server, proxies, headers
):
    # Given a worker sending an email to an SMTP server that answers after 8 s
    smtp_server.recorder.delay_s = 8
    start_worker(**{**proxies.env, "MAIL_TIMEOUT": "30"})
    [sent] = send_emails(live_app, headers, 1)
    wait_until(lambda: email_attempts(live_app, sent["email_id"]) == 1, message="sending")

    # When the worker's broker connection is cut for 1 s meanwhile
    proxies.broker.cut(1)

    # Then the email is sent once, by one attempt that succeeded
    wait_until(lambda: all_in(live_app, [sent["job_id"]], "succeeded"), timeout=40)
    time.sleep(2)  # room for a redelivered copy to run, were it going to
    found = job(live_app, sent["job_id"])
    assert [a.outcome for a in found.history] == ["succeeded"]
    assert audit(live_app, smtp_server)["delivered"] == 1
